package delivery

import (
	"bytes"
	"io"
)

type readCloser = io.ReadCloser

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func nopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
