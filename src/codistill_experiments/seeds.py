"""Seeds shared by the vision engine and the translation launcher (torch-free: building a
fairseq command line imports no torch)."""


def model_seed(seed, group):
    """Initialisation seed of model `group` in a run with `seed`: every model starts elsewhere."""
    return seed * 1000 + group
