"""The methods codistillation is compared with, as the training engine runs them: methods.py (PowerSGD,
local SGD, DiLoCo, SparseLoCo, MuLoCo), compressed_diloco.py (SparseLoCo's and MuLoCo's compressed
outer gradient, MuLoCo's Muon), streaming_diloco.py (torchft's Streaming DiLoCo)."""
