package collect

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// SMBIOSSystemSerial returns the System Information (type 1) structure's serial number from a raw
// SMBIOS structure table, as GetSystemFirmwareTable('RSMB') gives it after its 8-byte header (and as
// /sys/firmware/dmi/tables/DMI holds it on Linux).
func SMBIOSSystemSerial(table []byte) string {
	for off := 0; off+4 <= len(table); {
		typ, length := table[off], int(table[off+1])
		if length < 4 || off+length > len(table) {
			return ""
		}
		// The strings follow the formatted area, each NUL-terminated, the set ending with an extra NUL.
		end := off + length
		strs := []string{}
		for end < len(table) {
			n := bytes.IndexByte(table[end:], 0)
			if n < 0 {
				return ""
			}
			if n == 0 {
				end++
				if len(strs) == 0 && end < len(table) && table[end] == 0 {
					end++
				}
				break
			}
			strs = append(strs, string(table[end:end+n]))
			end += n + 1
		}
		if typ == 1 && length > 7 {
			idx := int(table[off+7]) // serial number string index (1-based; 0 = none)
			if idx >= 1 && idx <= len(strs) {
				return strings.TrimSpace(strs[idx-1])
			}
			return ""
		}
		if typ == 127 { // end of table
			return ""
		}
		off = end
	}
	return ""
}

// rawSMBIOSHeader is the header GetSystemFirmwareTable('RSMB') puts before the table.
type rawSMBIOSHeader struct {
	Calling20, Major, Minor, DMIRevision uint8
	Length                               uint32
}

// SMBIOSTableFromRSMB strips GetSystemFirmwareTable('RSMB')'s header.
func SMBIOSTableFromRSMB(b []byte) []byte {
	var h rawSMBIOSHeader
	if len(b) < 8 || binary.Read(bytes.NewReader(b[:8]), binary.LittleEndian, &h) != nil {
		return nil
	}
	if int(h.Length) > len(b)-8 {
		return b[8:]
	}
	return b[8 : 8+int(h.Length)]
}
