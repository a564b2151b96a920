"""The floor every layer stands on: the parameter table and its checks (parameters), and the run folder with the
name of every file a run holds (folder). Imports nothing of the kit above the basics (errors, paths, files, machine,
offline)."""
