package report

import (
	"fmt"
	"time"
)

const (
	kiB = int64(1) << 10
	miB = int64(1) << 20
	giB = int64(1) << 30
)

var cet = time.FixedZone("CET", 3600)

func at(day, h, m, s int) time.Time { return time.Date(2025, 3, day, h, m, s, 0, cet) }

func mins(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

// part1 places a one-part image.
func part1(vol string, file int64, bytes int64) []Part {
	return []Part{{Volume: vol, FileNo: file, Part: 1, Bytes: bytes}}
}

// fixtures are the nights the golden files show.
func fixtures() map[string]*Run {
	return map[string]*Run{
		"normal":     normalNight(),
		"failed":     failedNight(),
		"degraded":   degradedNight(),
		"autoflush":  autoflushNight(),
		"twovolumes": twoVolumeNight(),
		"empty":      emptyRun(),
		"problems":   problemsNight(),
	}
}

// problemsNight: every DLE is on a volume, but the run found a damaged
// holding image of an earlier run, and a failed write left a truncated
// tape file before the image went to the next volume: STRANGE, never ok.
func problemsNight() *Run {
	r := base("20250307010000", 7)
	r.End = at(7, 1, 40, 0)
	r.EstimateTime, r.DumpTime, r.TapeTime = mins(1), mins(20), mins(25)
	r.DLEs = []DLE{
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusOK, Files: 40, OrigSize: 60 * miB, OutSize: 20 * miB,
			DumpTime: mins(1), TapeTime: 4 * time.Second, Parts: part1("DailySet1-009", 1, 20*miB)},
	}
	r.Volumes = []Volume{
		{Label: "DailySet1-008", Slot: 8, Files: 0, Length: 400 * giB, Time: mins(1)},
		{Label: "DailySet1-009", Slot: 9, New: true, Files: 1, Bytes: 20 * miB, Length: 400 * giB, Time: mins(2)},
	}
	r.NextVolumes = []string{"volume DailySet1-010 in slot 10"}
	r.Problems = []Problem{
		{Where: "/var/spool/tapir/20250306010000/db1._var_lib_pgsql.0", What: "db1:/var/lib/pgsql level 0 of run 20250306010000 is damaged (SHA-256 mismatch); it is NOT taped and is kept for inspection: delete it with `tapir admin holding delete` once examined"},
		{Where: "volume DailySet1-008 file 4", What: "web1:/srv/www level 1: truncated after 1048576 payload bytes (ended with a filemark): input/output error; recorded as a failed file (verify skips it, no restore uses it)"},
	}
	r.Notes = []string{"holding: removed /var/spool/tapir/20250305010000/mail1._var_mail.2 (1.0 GiB), already on volume(s) DailySet1-007 file 3 since 2025-03-06 01:40, dumped by run 20250305010000 (a run was killed after taping it, before deleting the copy)"}
	return r
}

func base(ds string, day int) *Run {
	return &Run{Org: "DailySet1", Config: "/etc/tapir/DailySet1/tapir.toml", Hostname: "backup1.example.com",
		Datestamp: ds, Kind: KindDump, Start: at(day, 1, 0, 0)}
}

// normalNight: six DLEs at levels 0 to 3 on one volume, planner notes.
func normalNight() *Run {
	r := base("20250302010000", 2)
	r.End = at(2, 3, 12, 40)
	r.EstimateTime, r.DumpTime, r.TapeTime = mins(2.2), mins(101), mins(118)
	vol := "DailySet1-004"
	r.DLEs = []DLE{
		{Host: "db1", Path: "/var/lib/pgsql", Level: 0, Status: StatusOK, Files: 12034, OrigSize: 48 * giB, OutSize: 21*giB + 300*miB,
			DumpTime: mins(52.5), TapeTime: mins(31), Streamed: true, Starved: 12500 * time.Millisecond, Parts: part1(vol, 1, 21*giB+300*miB)},
		{Host: "mail1", Path: "/var/mail", Level: 0, Status: StatusOK, Files: 250311, OrigSize: 17 * giB, OutSize: 9*giB + 512*miB,
			DumpTime: mins(33), TapeTime: mins(14), Parts: part1(vol, 2, 9*giB+512*miB)},
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusOK, Files: 1802, OrigSize: 900 * miB, OutSize: 310 * miB,
			DumpTime: mins(3), TapeTime: mins(0.5), Parts: part1(vol, 3, 310*miB)},
		{Host: "web1", Path: "/home", Level: 1, Status: StatusOK, Files: 95, OrigSize: 41 * miB, OutSize: 12 * miB,
			DumpTime: mins(0.7), TapeTime: 3 * time.Second, Parts: part1(vol, 4, 12*miB)},
		{Host: "db1", Path: "/etc", Level: 2, Status: StatusOK, Files: 12, OrigSize: 180 * kiB, OutSize: 31 * kiB,
			DumpTime: 2 * time.Second, TapeTime: 400 * time.Millisecond, Parts: part1(vol, 5, 31*kiB)},
		{Host: "files1", Path: "/export/projects", Level: 3, Status: StatusOK, Files: 3310, OrigSize: 7 * giB, OutSize: 5 * giB,
			DumpTime: mins(11), TapeTime: mins(6), Parts: part1(vol, 6, 5*giB)},
	}
	var bytes int64
	for _, d := range r.DLEs {
		bytes += d.OutSize
	}
	r.Volumes = []Volume{{Label: vol, Slot: 4, Files: 6, Bytes: bytes, Length: 400 * giB, Time: mins(55), Starved: 12500 * time.Millisecond}}
	r.NextVolumes = []string{"volume DailySet1-005 in slot 5"}
	r.Notes = []string{
		"planner: full of web1 /srv/www is due in 2 days; promoted to tonight to balance the cycle",
		"planner: db1 /etc bumped to level 2 (level 1 would have been 95% of its full)",
	}
	return r
}

// failedNight: a failed DLE that was retried, a successful retry, two
// strange DLEs (one with more output than the details show), a skipped and
// a delayed DLE, and a disk name long enough to widen the columns.
func failedNight() *Run {
	r := base("20250304010000", 4)
	r.End = at(4, 4, 2, 5)
	r.EstimateTime, r.DumpTime, r.TapeTime = mins(4), mins(150), mins(160)
	vol := "DailySet1-006"
	long := "/export/projects/2025/customer-archive/scanned-contracts"
	var many []string
	for i := 1; i <= 130; i++ {
		many = append(many, fmt.Sprintf("tar: ./batch-%03d/scan.pdf: file changed as we read it", i))
	}
	r.DLEs = []DLE{
		{Host: "db1", Path: "/var/lib/pgsql", Level: 0, Status: StatusFailed,
			Reason:  "client agent db1:10080 sent no data for 30m0s (dtimeout); the partial image was removed from the holding disk",
			Strange: []string{"tar: ./base/16384/2619: file changed as we read it", "tar: ./pg_wal/000000010000004A00000012: file shrank by 8192 bytes; padding with zeros"},
			Retries: []Attempt{{Level: 0, Reason: "client agent db1:10080: connection reset by peer"}}},
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusOK, Files: 1810, OrigSize: 910 * miB, OutSize: 312 * miB,
			DumpTime: mins(3), TapeTime: mins(0.5), Parts: part1(vol, 1, 312*miB),
			Retries:  []Attempt{{Level: 1, Reason: "client agent web1:10080: dial tcp 192.0.2.10:10080: connect: connection refused"}},
			Snapshot: "btrfs /srv/www/.tapir-snapshot-5f3a9c",
			Hooks: []Hook{
				{Name: "pre", Command: "/etc/tapir/exec/quiesce www", Exit: 0, Seconds: 1.2, Output: "cache flushed\nsessions paused\n"},
				{Name: "snapshot-create", Command: "btrfs subvolume snapshot -r /srv/www /srv/www/.tapir-snapshot-5f3a9c", Exit: 0, Seconds: 0.3},
				{Name: "snapshot-remove", Command: "btrfs subvolume delete /srv/www/.tapir-snapshot-5f3a9c", Exit: 0, Seconds: 0.4},
				{Name: "post", Command: "/etc/tapir/exec/thaw www", Exit: 3, Seconds: 0.1, Output: "thaw: sessions could not be resumed\n"},
			}},
		{Host: "mail1", Path: "/var/mail", Level: 1, Status: StatusStrange, Files: 4100, OrigSize: 2 * giB, OutSize: 1 * giB,
			DumpTime: mins(6), TapeTime: mins(1.5), Parts: part1(vol, 2, 1*giB),
			Strange: []string{"tar: ./spool/alice: file changed as we read it", "tar: ./spool/bob.lock: socket ignored", "tar: ./spool/carol: Cannot open: Permission denied"}},
		{Host: "files1", Path: long, Level: 0, Status: StatusStrange, Files: 52000, OrigSize: 210 * giB, OutSize: 198 * giB,
			DumpTime: mins(141), TapeTime: mins(152), Parts: part1(vol, 3, 198*giB), Strange: many},
		{Host: "nfs1", Path: "/mnt/scratch", Level: 0, Status: StatusSkipped, Reason: "dumptype scratch has skip = \"always\""},
		{Host: "arch1", Path: "/data", Level: 0, Status: StatusDelayed,
			Reason: "its full (520 GiB) does not fit tonight (380 GiB left on 1 volume); it goes first next run"},
	}
	r.Volumes = []Volume{{Label: vol, Slot: 6, Files: 3, Bytes: (312+1024)*miB + 198*giB, Length: 400 * giB, Time: mins(154)}}
	r.NextVolumes = []string{"volume DailySet1-007 in slot 7"}
	return r
}

// degradedNight: the expected volume is missing; the images stay on the
// holding disk, fulls were demoted to keep the holding reserve.
func degradedNight() *Run {
	r := base("20250305010000", 5)
	r.End = at(5, 1, 48, 0)
	r.EstimateTime, r.DumpTime = mins(2), mins(45)
	hold := "on the holding disk, not on a volume: no usable volume"
	demoted := "full demoted to level 1: without a volume the holding disk keeps its reserve (100%) for incrementals"
	r.DLEs = []DLE{
		{Host: "db1", Path: "/var/lib/pgsql", Level: 1, Status: StatusHolding, Reason: hold, Demoted: demoted,
			Files: 300, OrigSize: 3 * giB, OutSize: 1 * giB, DumpTime: mins(9)},
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusHolding, Reason: hold,
			Files: 1822, OrigSize: 920 * miB, OutSize: 315 * miB, DumpTime: mins(3)},
		{Host: "mail1", Path: "/var/mail", Level: 2, Status: StatusHolding, Reason: hold, Demoted: "",
			Files: 5000, OrigSize: 2 * giB, OutSize: 1 * giB, DumpTime: mins(7)},
		{Host: "files1", Path: "/export/projects", Level: 0, Status: StatusFailed,
			Reason: "not dumped: its full (190 GiB) is larger than the holding disk space outside the reserve (0 B); insert a volume"},
	}
	r.Degraded = &Degraded{
		Reason:   "slot 5 is empty and the other slots hold volumes still inside tapecycle (10)",
		Expected: "volume DailySet1-007 in slot 7",
		Insert:   "volume DailySet1-007 into slot 7 (or a blank cartridge, which is labelled DailySet1-011)",
	}
	r.NextVolumes = []string{"volume DailySet1-007 in slot 7"}
	r.Preflight = []Problem{{Where: "volumes", What: "slot 5 is empty; the next run needs volume DailySet1-007 in slot 7 or a blank cartridge"}}
	r.Notes = []string{"holding: 3 images use 2.3 GiB of 200 GiB on /var/spool/tapir"}
	return r
}

// autoflushNight is the night after degradedNight: the leftovers go first,
// then the night's own dumps.
func autoflushNight() *Run {
	r := base("20250306010000", 6)
	r.End = at(6, 2, 10, 30)
	r.EstimateTime, r.DumpTime, r.TapeTime = mins(2), mins(50), mins(55)
	vol := "DailySet1-007"
	r.DLEs = []DLE{
		{Host: "db1", Path: "/var/lib/pgsql", Level: 1, Status: StatusOK, Flushed: "20250305010000", Files: 300, OrigSize: 3 * giB, OutSize: 1 * giB,
			TapeTime: mins(2), Parts: part1(vol, 1, 1*giB)},
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusOK, Flushed: "20250305010000", Files: 1822, OrigSize: 920 * miB, OutSize: 315 * miB,
			TapeTime: mins(0.6), Parts: part1(vol, 2, 315*miB)},
		{Host: "mail1", Path: "/var/mail", Level: 2, Status: StatusOK, Flushed: "20250305010000", Files: 5000, OrigSize: 2 * giB, OutSize: 1 * giB,
			TapeTime: mins(2), Parts: part1(vol, 3, 1*giB)},
		{Host: "db1", Path: "/var/lib/pgsql", Level: 0, Status: StatusOK, Files: 12100, OrigSize: 48 * giB, OutSize: 21 * giB,
			DumpTime: mins(50), TapeTime: mins(30), Parts: part1(vol, 4, 21*giB)},
		{Host: "web1", Path: "/srv/www", Level: 2, Status: StatusOK, Files: 40, OrigSize: 60 * miB, OutSize: 20 * miB,
			DumpTime: mins(1), TapeTime: 4 * time.Second, Parts: part1(vol, 5, 20*miB)},
	}
	r.Volumes = []Volume{{Label: vol, Slot: 7, New: true, Files: 5, Bytes: 23*giB + 335*miB, Length: 400 * giB, Time: mins(35)}}
	r.NextVolumes = []string{"volume DailySet1-008 in slot 8"}
	r.Notes = []string{"autoflush: 3 images of run 20250305010000 went to the volume before tonight's dumps"}
	return r
}

// twoVolumeNight: one full spans two volumes.
func twoVolumeNight() *Run {
	r := base("20250307010000", 7)
	r.Org = "demo"
	r.Config = "/srv/tapir/demo.toml"
	r.End = at(7, 6, 30, 0)
	r.EstimateTime, r.DumpTime, r.TapeTime = mins(3), mins(290), mins(320)
	r.DLEs = []DLE{
		{Host: "files1", Path: "/export", Level: 0, Status: StatusOK, Files: 880000, OrigSize: 610 * giB, OutSize: 560 * giB,
			DumpTime: mins(280), TapeTime: mins(300), Parts: []Part{
				{Volume: "demo-004", FileNo: 2, Part: 1, Bytes: 352 * giB},
				{Volume: "demo-005", FileNo: 1, Part: 2, Bytes: 208 * giB},
			}},
		{Host: "db1", Path: "/var/lib/pgsql", Level: 1, Status: StatusOK, Files: 210, OrigSize: 5 * giB, OutSize: 2 * giB,
			DumpTime: mins(10), TapeTime: mins(3), Parts: part1("demo-004", 1, 2*giB)},
		{Host: "web1", Path: "/srv/www", Level: 1, Status: StatusOK, Files: 1800, OrigSize: 900 * miB, OutSize: 300 * miB,
			DumpTime: mins(3), TapeTime: mins(0.5), Parts: part1("demo-005", 2, 300*miB)},
	}
	r.Volumes = []Volume{
		{Label: "demo-004", Slot: 4, Files: 2, Bytes: 354 * giB, Length: 400 * giB, Time: mins(190)},
		{Label: "demo-005", Slot: 5, New: true, Files: 2, Bytes: 208*giB + 300*miB, Length: 400 * giB, Time: mins(125)},
	}
	r.NextVolumes = []string{"volume demo-006 in slot 6", "a new volume, labelled demo-007 in slot 7"}
	return r
}

// emptyRun: a flush with nothing to flush.
func emptyRun() *Run {
	r := base("20250308093000", 8)
	r.Kind = KindFlush
	r.Start = at(8, 9, 30, 0)
	r.End = at(8, 9, 30, 1)
	r.Notes = []string{"flush: no image on the holding disk waits for a volume"}
	return r
}

func checkFixture() *Check {
	return &Check{
		Org: "DailySet1", Config: "/etc/tapir/DailySet1/tapir.toml", Hostname: "backup1.example.com",
		Time: at(4, 16, 0, 3),
		Problems: []Problem{
			{Where: "holding disk /var/spool/tapir", What: "12.1 GiB free, the reserve for incrementals needs 20 GiB: free space or lower reserve"},
			{Where: "host db1", What: "client agent db1:10080: dial tcp 192.0.2.11:10080: connect: connection refused; is `tapir client` running there?"},
		},
		Info:    []string{"Will write to volume DailySet1-005 in slot 5.", "Holding disk /var/spool/tapir: 12.1 GiB free."},
		Summary: "Client check: 4 hosts checked in 2.4 s.",
	}
}
