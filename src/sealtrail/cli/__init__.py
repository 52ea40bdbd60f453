"""The command line: thin commands over the engine (see DESIGN.md, "CLI contract")."""
