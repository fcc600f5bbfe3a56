"""Proposing structures from spectra with a trained model: candidate decoding
(`candidates`), ranked elucidation (`elucidate`), forward predictions of many structures
(`prediction`) and the elucidation benchmark (`benchmark`).

Nothing is re-exported: import a name from the module that defines it."""
