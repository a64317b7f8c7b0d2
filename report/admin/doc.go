// Package admin renders what the catalog knows about DLEs for a person:
// `tapir admin find HOST [PATH]` (every image: date, level, status,
// volume, tape file, sizes) and `tapir admin info HOST PATH` (the history
// with dump rates and compression, averaged per level kind).
package admin
