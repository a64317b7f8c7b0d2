// Package report owns the run report: the facts of one night (what was
// dumped, at which level, how big, how fast, onto which volume, what failed
// and why, what the next run needs) and their renderings: plain text in the
// spirit of amreport (Run.Text), JSON for machines and for the catalog
// (Run.JSON, ParseJSON, Render), and the report of a preflight check
// (Check). The report is what a backup administrator reads every morning;
// every failed or strange DLE must appear in it with its reason, and every
// problem found beyond the DLEs (Run.Problems) makes the night strange.
//
// The package does no I/O: the server fills a Run, and the sub-package
// report/mail sends it. The sections and the JSON schema are written down in
// docs/format/report.md.
package report
