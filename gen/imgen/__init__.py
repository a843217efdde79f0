"""imgen — the generator behind gen/immersive_gen.py (see its docstring), one module per part:
lexer, pattern, model, reader, checks, openapi, emit_c, docs, cli."""
