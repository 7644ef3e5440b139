"""Files on disk: the content-addressed artifact store, the cache ledger, cross-process locks."""
