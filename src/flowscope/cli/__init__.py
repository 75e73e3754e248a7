"""The `flowscope` command line: thin wrappers over the library."""
