"""The pure model core: text classifiers and a span tagger with sklearn conventions (no Flask, no I/O)."""
