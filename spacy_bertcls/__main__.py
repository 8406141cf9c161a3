"""``python -m spacy_bertcls``: the ``bertcls`` command line (used by project.yml, so that the
project's commands run in the same Python environment as spaCy, activated or not)."""

from .cli import main

main()
