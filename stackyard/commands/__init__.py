"""The command-line layer: one module per family of ``stackyard`` commands.

Each module parses its options, calls the library packages (deploy,
imagebuild, testbed, guest) and prints; :mod:`stackyard.cli` only assembles
the parser. Nothing below this layer imports it.
"""
