"""One parser per document format; retrieval/loaders.py picks one by suffix and reads the file."""
