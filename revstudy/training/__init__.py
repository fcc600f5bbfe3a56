"""Training one configuration: its config (`config`), the invertible network (`model`),
loss terms (`losses`), the paper's metrics (`metrics`), the trainer and its repeats
(`trainer`, `fused`, `lanes`, `runs`), checkpoints and saved models (`checkpoint`, `saved`),
retrieval, fp32 precision and the CSP5 reference predictor. Imports the data layer only.

Nothing is re-exported: import a name from the module that defines it
(`from revstudy.training.trainer import Trainer`); the few names most users need are on
`revstudy` itself."""
