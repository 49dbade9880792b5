"""persona: emotion, gender and age from recorded speech, for whole folders of audio."""

__version__ = "0.1.0"
