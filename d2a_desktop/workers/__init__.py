"""Background workers (QObject moved to a QThread): capture, inference, recorder, one-shot tasks."""
