"""Driving a study: search spaces and launch options (`spaces`, `options`), Optuna
through Ray Tune (`search`, `scheduling`, the database in `optuna_store`), the driver
(`driver`), the time budget across driver runs (`budget`), one trial (`trial_context`,
`trial`), Ray Tune's callback and stopper (`callbacks`) and the live panel they feed
(`live_panel`), the folder's records and tables (`records`), status (`summary`), exporting
the best configurations (`export`) and the embedded Ray's watchdog (`reaper`).

Nothing is re-exported: import a name from the module that defines it."""
