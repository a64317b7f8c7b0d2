// Package report owns the run report: the facts of one night (what was
// dumped, at which level, how big, how fast, onto which volume, what failed
// and why) and their rendering as plain text in the spirit of amreport.
// The report is what a backup administrator reads every morning; every
// failed or strange DLE must appear in it with its reason.
package report
