package collect

import "testing"

func TestSMBIOSSystemSerial(t *testing.T) {
	// Type 0 (BIOS) with two strings, type 1 (System) with serial string index 3, then type 127.
	table := []byte{0, 0x18, 0, 0}
	table = append(table, make([]byte, 0x18-4)...)
	table = append(table, "SeaBIOS\x00rel-1.16\x00\x00"...)
	sys := []byte{1, 0x1b, 1, 0, 1, 2, 0, 3}
	sys = append(sys, make([]byte, 0x1b-8)...)
	table = append(table, sys...)
	table = append(table, "QEMU\x00Standard PC\x00vm-42 \x00\x00"...)
	table = append(table, 127, 4, 2, 0, 0, 0)
	if got := SMBIOSSystemSerial(table); got != "vm-42" {
		t.Fatalf("serial %q", got)
	}
	rsmb := append([]byte{0, 3, 0, 0, byte(len(table)), 0, 0, 0}, table...)
	if got := SMBIOSSystemSerial(SMBIOSTableFromRSMB(rsmb)); got != "vm-42" {
		t.Fatalf("serial through RSMB %q", got)
	}
	if got := SMBIOSSystemSerial(table[:30]); got != "" {
		t.Fatalf("truncated table gave %q", got)
	}
}
