"""Data: Super-NaturalInstructions reader and sampler, MoA domain data, the built-in compositional suite, batches."""
