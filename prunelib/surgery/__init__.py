"""Model surgery: loading and saving checkpoints, the exact C3k2 replacement, the Torch-Pruning pruner, measuring
(MACs, parameters, channels, latency) and inspecting what the pruner will see."""
