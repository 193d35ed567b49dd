package main

import (
	"context"
	"errors"
	"io"
)

// Commands still being written in this session; replaced before landing.
var errPending = errors.New("not available yet")

func runGen(context.Context, []string, io.Writer, io.Writer) error     { return errPending }
func runProcess(context.Context, []string, io.Writer, io.Writer) error { return errPending }
func runAlerts(context.Context, []string, io.Writer, io.Writer) error  { return errPending }
func runServe(context.Context, []string, io.Writer, io.Writer) error   { return errPending }
