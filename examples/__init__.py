"""The README's example specs, and the script that runs them for the README's figures.

``make examples`` (``python -m examples``) runs every spec here through the engine and writes
``examples/results.json``; ``examples/readme.py`` renders the README's examples section from it.
"""
