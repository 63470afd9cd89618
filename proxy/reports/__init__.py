"""What is read back from the store for people: export, the Kong file-log, stats, the status line, inspection, replay."""
