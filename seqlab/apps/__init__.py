"""Applications built from seqlab's layers: each module trains, evaluates and runs one model and adds its `seqlab` command."""
