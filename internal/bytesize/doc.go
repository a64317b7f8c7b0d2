// Package bytesize formats byte counts for people: "0 B", "512 B",
// "1.5 KiB", "310 MiB", "1.2 TiB". It is tapir's one such formatter, used
// by every message, table and report that shows a size in words (the
// planner's explanations, the run report, the admin listings, the server's
// messages and the recover shell).
//
// Formats fixed by a document stay with their owners: the image header's
// numeric fields and dd's bs= (image), the amreport-style KiB and MiB
// columns of the report (report), and the configuration's size syntax
// (config). It imports nothing but the standard library, so that pure
// packages such as the planner may use it.
package bytesize
