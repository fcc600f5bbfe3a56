"""The data layer: the paper's CSV format read and checked (`dataset`), carbon numberings
(`numbering`), spectrum codes (`codes`), a data file's summary (`info`), the public file
fetched and cached (`fetch`) and RDKit chemistry (`chem`). Imports nothing else from
revstudy but the contract modules and errors.

Nothing is re-exported: import a name from the module that defines it
(`from revstudy.data.dataset import read_dataset`)."""
