package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("json" or "text").
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
