"""Job entry points (runnable by spark-submit) and the helpers they share."""
