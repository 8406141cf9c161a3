"""Tests of the desktop app (spacy_bertcls_gui), headless with pytest-qt."""
