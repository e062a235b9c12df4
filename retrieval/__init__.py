"""Document loading, chunking, embedding, indexing and hybrid search. Never imports `bot`."""
