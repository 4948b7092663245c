"""The collector framework: subclass `basemetric.Metric`, raise `errors.CollectorError`."""
