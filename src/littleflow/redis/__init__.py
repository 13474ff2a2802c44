"""littleflow on Redis: store, transport, engine and workers."""
