"""Base models: Hugging Face hub ids, local directories, GGUF files and tiny models built from configs."""
