"""The scenario catalogues, their runner, and the tests that run them as real `%%nanwatch` cells."""
