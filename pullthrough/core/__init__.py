"""Pure logic: names, filenames, index models, parsers, renderers, filters. No I/O."""
