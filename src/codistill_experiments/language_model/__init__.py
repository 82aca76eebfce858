"""The language-model workloads: corpus.py (the generated language lm_mini and lm_transformer_mini read)
and transformer.py (lm_transformer_mini, a small causal transformer the training engine runs)."""
