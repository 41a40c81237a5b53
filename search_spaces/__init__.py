"""The shared vocabulary: study specs, parameter types, algorithms and converters."""

from search_spaces.spec import StudySpec

__all__ = ["StudySpec"]
