// Package protocol holds the messages of the vmflow guest agent protocol, version 1
// (docs/guest-agent.md), and a line-framed JSON encoder and decoder that enforce its line cap.
package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Version is the protocol version every message carries in "v".
const Version = 1

// MaxLine is the longest line either side may send, newline included.
const MaxLine = 65536

// Message types.
const (
	TypeHello    = "hello"
	TypeMetrics  = "metrics"
	TypeResponse = "response"
	TypeSync     = "sync"
	TypeRequest  = "request"
)

// Error codes of a failed response.
const (
	CodeNotFound    = "not-found"
	CodeDenied      = "denied"
	CodeInvalid     = "invalid"
	CodeUnsupported = "unsupported"
	CodeFailed      = "failed"
)

// MaxRequestID is the longest request id the agent accepts.
const MaxRequestID = 64

// OS describes the guest's operating system in a hello.
type OS struct {
	Family  string `json:"family"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Kernel  string `json:"kernel"`
	Arch    string `json:"arch"`
}

// Hello is sent when the agent (re)opens the port and in answer to a sync.
type Hello struct {
	V            int      `json:"v"`
	Type         string   `json:"type"`
	Sync         string   `json:"sync,omitempty"`
	MachineID    string   `json:"machineId"`
	AgentVersion string   `json:"agentVersion"`
	OS           OS       `json:"os"`
	Hostname     string   `json:"hostname"`
	Capabilities []string `json:"capabilities"`
	IntervalS    int      `json:"intervalS"`
}

// CPU is the CPU use over the last interval, in percent (0..100).
type CPU struct {
	TotalPct   float64   `json:"totalPct"`
	PerCorePct []float64 `json:"perCorePct"`
}

// Memory in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"totalBytes"`
	AvailableBytes uint64 `json:"availableBytes"`
	UsedBytes      uint64 `json:"usedBytes"`
	SwapTotalBytes uint64 `json:"swapTotalBytes"`
	SwapUsedBytes  uint64 `json:"swapUsedBytes"`
}

// Filesystem is one mounted file system's size and use.
type Filesystem struct {
	Mount      string `json:"mount"`
	FsType     string `json:"fsType"`
	TotalBytes uint64 `json:"totalBytes"`
	UsedBytes  uint64 `json:"usedBytes"`
}

// NIC counters, cumulative since boot.
type NIC struct {
	Name      string `json:"name"`
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
}

// Disk I/O counters of a whole disk, cumulative since boot.
type Disk struct {
	Name       string `json:"name"`
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
	Reads      uint64 `json:"reads"`
	Writes     uint64 `json:"writes"`
}

// User is a logged-in session.
type User struct {
	Name  string `json:"name"`
	TTY   string `json:"tty"`
	Since string `json:"since"`
}

// TopProcess is an entry of topCpu / topMemory.
type TopProcess struct {
	PID      int     `json:"pid"`
	Name     string  `json:"name"`
	CPUPct   float64 `json:"cpuPct"`
	RSSBytes uint64  `json:"rssBytes"`
}

// Metrics is one sample, sent every interval.
type Metrics struct {
	V           int          `json:"v"`
	Type        string       `json:"type"`
	Seq         uint64       `json:"seq"`
	UptimeS     float64      `json:"uptimeS"`
	CPU         CPU          `json:"cpu"`
	Load        []float64    `json:"load"`
	Memory      Memory       `json:"memory"`
	Filesystems []Filesystem `json:"filesystems"`
	NICs        []NIC        `json:"nics"`
	Disks       []Disk       `json:"disks"`
	Users       []User       `json:"users"`
	TopCPU      []TopProcess `json:"topCpu"`
	TopMemory   []TopProcess `json:"topMemory"`
}

// ErrorBody is the error of a failed response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Response answers a request with the same id.
type Response struct {
	V      int        `json:"v"`
	Type   string     `json:"type"`
	ID     string     `json:"id"`
	OK     bool       `json:"ok"`
	Result any        `json:"result,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// Incoming is any host → guest message: the envelope plus the fields of sync and request.
type Incoming struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args"`
}

// OKResponse is a successful response.
func OKResponse(id string, result any) *Response {
	if result == nil {
		result = struct{}{}
	}
	return &Response{V: Version, Type: TypeResponse, ID: id, OK: true, Result: result}
}

// ErrResponse is a failed response.
func ErrResponse(id, code, message string) *Response {
	return &Response{V: Version, Type: TypeResponse, ID: id, OK: false, Error: &ErrorBody{Code: code, Message: message}}
}

// ErrLineTooLong is returned for a message whose line would exceed MaxLine.
var ErrLineTooLong = errors.New("line longer than 65536 bytes")

// Marshal encodes one message as a line (newline included), refusing lines over MaxLine.
func Marshal(msg any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil { // Encode appends the '\n'
		return nil, err
	}
	if buf.Len() > MaxLine {
		return nil, ErrLineTooLong
	}
	return buf.Bytes(), nil
}

// Encoder writes messages, one line each; safe for concurrent use (a line is written in one Write).
type Encoder struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEncoder writes to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes msg as one line.
func (e *Encoder) Encode(msg any) error {
	line, err := Marshal(msg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.w.Write(line)
	return err
}

// Decoder reads host messages, one per line. Lines over MaxLine are skipped whole and reported as
// ErrLineTooLong; lines that are not a JSON object with a "type" are reported as *MalformedError.
// Both leave the decoder usable for the next line.
type Decoder struct {
	r *bufio.Reader
}

// NewDecoder reads from r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 4096)} }

// MalformedError is a line that is not a valid message.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return "malformed message: " + e.Reason }

// ReadLine returns the next line without its newline. A line longer than MaxLine (newline
// included) is consumed and ErrLineTooLong returned. At EOF a partial last line is dropped.
func (d *Decoder) ReadLine() ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := d.r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > MaxLine {
				tooLong = true
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, ErrLineTooLong
			}
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// Decode returns the next message. Errors other than ErrLineTooLong and *MalformedError come from
// the reader (io.EOF when the host closed the port).
func (d *Decoder) Decode() (*Incoming, error) {
	line, err := d.ReadLine()
	if err != nil {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r")
	var m Incoming
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, &MalformedError{Reason: err.Error()}
	}
	if m.Type == "" {
		return nil, &MalformedError{Reason: "no type"}
	}
	if m.V < 1 {
		return nil, &MalformedError{Reason: fmt.Sprintf("bad version %d", m.V)}
	}
	return &m, nil
}
