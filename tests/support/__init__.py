"""Helpers that more than one test file uses; test files import from here, never from each other."""
