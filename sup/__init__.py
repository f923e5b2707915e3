"""The `sup` command line, sitting above dsl, compiler, backends and verify."""
