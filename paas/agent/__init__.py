"""The node agent: makes the running dynos match each app's release and formation."""
