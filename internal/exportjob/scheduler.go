package exportjob

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Phase is where an hour's State is in its life:
//
//	(no blob) --claim: If-None-Match:*--> claimed --POST /jobs/export 202--> requested(jobId)
//	claimed (lease over, or released after a rejected POST) --claim: If-Match--> claimed
//	requested --status Succeeded--> succeeded
//	requested --status Failed, retries left: record retry, POST /retry--> requested
//	requested --status Failed, no retries left--> failed
//	requested --status Canceled--> canceled
//	claimed, MaxAttempts creates used without a job--> failed
//
// succeeded, failed and canceled are final: the hour is never asked again
// (run `tokenpivot exports status` to see failed hours; delete the blob to
// have the hour requested afresh).
type Phase string

// The phases, as the state blobs write them.
const (
	PhaseClaimed   Phase = "claimed"
	PhaseRequested Phase = "requested"
	PhaseSucceeded Phase = "succeeded"
	PhaseFailed    Phase = "failed"
	PhaseCanceled  Phase = "canceled"
)

// Final reports whether phase is final.
func Final(phase Phase) bool {
	return phase == PhaseSucceeded || phase == PhaseFailed || phase == PhaseCanceled
}

// StatePrefix is where the states live in the state container.
const StatePrefix = "exports/"

// Key is one table and hour.
type Key struct {
	Table string
	Hour  time.Time
}

func (k Key) String() string { return k.Table + "@" + k.Hour.UTC().Format("2006-01-02T15") }

// StateName is the state blob of k: exports/<table>/<yyyy/MM/dd/HH>.json.
func StateName(k Key) string {
	return StatePrefix + k.Table + "/" + k.Hour.UTC().Format("2006/01/02/15") + ".json"
}

// State is the state blob of one table and hour.
type State struct {
	Table string    `json:"table"`
	Hour  time.Time `json:"hour"`
	Phase Phase     `json:"phase"`
	// Owner and LeaseUntil: the run that claimed the hour, and until when
	// the claim is its own. A released claim has LeaseUntil <= now.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// Attempts counts the claims that went on to POST a job.
	Attempts int `json:"attempts"`
	// Ambiguous: the last create's outcome is unknown (a 5xx, a 408, a
	// transport error after the request went out): the job may exist, so
	// the output folder is looked up before asking again.
	Ambiguous   bool      `json:"ambiguous,omitempty"`
	JobID       string    `json:"jobId,omitempty"`
	RequestedAt time.Time `json:"requestedAt,omitzero"`
	// Retries counts the /retry calls decided (recorded before each call).
	Retries     int       `json:"retries,omitempty"`
	LastRetryAt time.Time `json:"lastRetryAt,omitzero"`
	// JobStatus and Progress are the last status read.
	JobStatus string    `json:"jobStatus,omitempty"`
	Progress  float64   `json:"progressPercentage,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// Stuck is set, and reported once, when the job runs past StuckAfter.
	Stuck      bool      `json:"stuck,omitempty"`
	StuckSince time.Time `json:"stuckSince,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Error      string    `json:"error,omitempty"`
	Updated    time.Time `json:"updated"`

	etag string
}

// Key returns the state's table and hour.
func (st State) Key() Key { return Key{st.Table, st.Hour} }

// Summary counts what one pass did and found.
type Summary struct {
	Hours     int `json:"hours"`     // table-hours considered
	Requested int `json:"requested"` // jobs created
	Retried   int `json:"retried"`   // /retry calls made
	Released  int `json:"released"`  // creates the API rejected (or no token): asked again later
	Adopted   int `json:"adopted"`   // jobs of ambiguous creates found in their output folder
	Succeeded int `json:"succeeded"` // hours finished in this pass
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
	Done      int `json:"done"`     // hours in a final phase after the pass
	Running   int `json:"running"`  // hours with a job not finished
	Stuck     int `json:"stuck"`    // of those, running past StuckAfter
	Busy      int `json:"busy"`     // claimed by another run
	Deferred  int `json:"deferred"` // waiting for a free job slot (MaxActive)
	Errors    int `json:"errors"`
	// Phases is each hour's phase after the pass ("" = no state yet).
	Phases map[Key]Phase `json:"-"`
}

// Scheduler requests and tracks one export job per table and hour.
//
// Concurrency: every state change is a conditional write, so runs racing on
// one hour serialize on its blob. The first write of an hour is a create
// (If-None-Match: *): of two runs only one claims it, the other sees the
// blob and moves on. Every later change is If-Match on the ETag the run
// read, so a run acting on a stale read loses and leaves the hour alone.
//
// Crashes: a POST is made only by the run holding a live claim, and the
// claim is written before the POST. Crash (or storage failure) points:
//
//   - before the claim is written: nothing happened; the next run claims.
//   - after the claim, before or during the POST: the hour stays claimed
//     until its lease (Lease) runs out, then the next run takes it over
//     (If-Match) and POSTs. Not lost.
//   - after the POST returned 202, before the jobId is recorded: the run
//     retries that write a few times (a storage hiccup costs nothing); if the
//     process itself died, the next run after the lease POSTs again. The
//     API has no idempotency key and separate jobs do not de-duplicate each
//     other (only /retry of one job skips bins already exported), so the hour
//     is then exported twice, under two jobId folders. That is the one
//     duplicate this design cannot avoid without a way to find the first
//     job (the API documents no list call); it is harmless to the results,
//     because the pipeline's alerts are keyed by the rows' content and their
//     evidence de-duplicated by the source rows' Ids (internal/alert), and
//     it costs one more hour of Search Jobs and Data Export meters. The
//     window is a single blob write long. The alternative, never re-POSTing
//     a claimed hour, would lose the hour instead.
//   - a POST that failed ambiguously (5xx, 408, transport error: the job may
//     exist) is treated like that crash: the hour stays claimed until the
//     lease ends, and is marked Ambiguous; the run that takes it over looks
//     for the job's output (Output, FindJob) and tracks a job it finds
//     instead of POSTing again. A definite rejection (4xx) releases it for
//     the next run; no token, 401 and 403 release it without using an
//     attempt.
//   - around /retry: the decision (Retries+1) is written before the call, so
//     a crash after it never retries more than MaxAttempts; a crash between
//     the write and the call leaves a Failed job that the next run retries.
//   - after a status read, before its write: the next run reads it again.
type Scheduler struct {
	Config Config
	API    API
	// Store and Container hold the states (the pipeline's state container).
	Store     store.Store
	Container string
	// Output is the export account the jobs write to (the pipeline's
	// export store, Config.Containers): after an ambiguous create, the
	// job's output folder for the hour tells whether it exists. nil skips
	// the look-up (the hour is asked again, and may be exported twice).
	Output store.Store
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// WriteRetryWait is the pause between the attempts to record a created
	// job (500 ms if 0).
	WriteRetryWait time.Duration
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Scheduler) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Window returns the hours a timer run at now considers: complete for at
// least Settle, within Lookback, not before FirstHour, oldest first.
func (c Config) Window(now time.Time) []time.Time {
	last := now.UTC().Add(-c.Settle).Truncate(time.Hour).Add(-time.Hour)
	first := last.Add(-c.Lookback + time.Hour)
	if !c.FirstHour.IsZero() && c.FirstHour.After(first) {
		first = c.FirstHour
	}
	var out []time.Time
	for h := first; !h.After(last); h = h.Add(time.Hour) {
		out = append(out, h)
	}
	return out
}

// Keys returns every table for each hour.
func Keys(hours []time.Time) []Key {
	var keys []Key
	for _, h := range hours {
		for _, t := range Tables {
			keys = append(keys, Key{t, h.UTC().Truncate(time.Hour)})
		}
	}
	return keys
}

// Run is one timer run: a Pass over the Window.
func (s *Scheduler) Run(ctx context.Context) (Summary, error) {
	if !s.Config.Enabled() {
		return Summary{}, errors.New("exportjob: no workspace configured")
	}
	return s.Pass(ctx, Keys(s.Config.Window(s.now())))
}

// Pass reads the state of each key, polls the jobs that are running
// (retrying failed ones, reporting stuck ones), then requests the hours not
// yet requested, oldest first, while fewer than MaxActive jobs run. It goes
// on past errors and returns them joined.
func (s *Scheduler) Pass(ctx context.Context, keys []Key) (Summary, error) {
	ps := &pass{s: s, keys: keys, sum: Summary{Hours: len(keys), Phases: map[Key]Phase{}}}
	if err := s.Config.Validate(); err != nil {
		return ps.sum, err
	}
	ps.now = s.now()
	ps.readStates(ctx)
	ps.pollRunning(ctx)
	ps.requestNew(ctx)
	ps.summarize()
	return ps.sum, errors.Join(ps.errs...)
}

// pass is one Pass over keys, as its steps pass it on.
type pass struct {
	s    *Scheduler
	keys []Key
	sum  Summary
	errs []error
	now  time.Time
	// states are the keys' states (nil: no blob); skip, the unreadable
	// ones, left alone this pass.
	states []*State
	skip   []bool
	// active counts the jobs running or being created: at most MaxActive.
	active int
}

func (ps *pass) fail(k Key, err error) {
	ps.sum.Errors++
	ps.errs = append(ps.errs, fmt.Errorf("%s: %w", k, err))
}

// readStates reads the state of each key.
func (ps *pass) readStates(ctx context.Context) {
	ps.states = make([]*State, len(ps.keys))
	ps.skip = make([]bool, len(ps.keys))
	for i, k := range ps.keys {
		st, err := ps.s.read(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotExist):
		case err != nil:
			ps.fail(k, err)
			ps.skip[i] = true
		default:
			ps.states[i] = st
		}
	}
}

// pollRunning polls the requested jobs and counts the active ones.
func (ps *pass) pollRunning(ctx context.Context) {
	for i, st := range ps.states {
		if st == nil {
			continue
		}
		switch {
		case st.Phase == PhaseRequested:
			if err := ps.s.poll(ctx, st, &ps.sum); err != nil {
				ps.fail(ps.keys[i], err)
			}
			// A job past StuckAfter (never finishing, an unknown status,
			// a status that cannot be read) no longer holds a slot:
			// otherwise a few of them would stop every later hour.
			if st.Phase == PhaseRequested && !st.Stuck {
				ps.active++
			}
		case st.Phase == PhaseClaimed && st.LeaseUntil.After(ps.now):
			ps.active++ // another run is creating its job
		}
	}
}

// requestNew requests the hours not yet requested (or whose claim lapsed),
// oldest first, while fewer than MaxActive jobs run.
func (ps *pass) requestNew(ctx context.Context) {
	owner := newOwner()
	for i, k := range ps.keys {
		if ps.skip[i] {
			continue
		}
		st := ps.states[i]
		if st != nil && (st.Phase != PhaseClaimed || st.LeaseUntil.After(ps.now)) {
			if st.Phase == PhaseClaimed {
				ps.sum.Busy++
			}
			continue
		}
		if ps.active >= ps.s.Config.MaxActive {
			ps.sum.Deferred++
			continue
		}
		created, err := ps.s.request(ctx, k, st, owner, &ps.sum)
		if err != nil {
			ps.fail(k, err)
		}
		if created != nil {
			ps.states[i] = created
			if created.Phase == PhaseRequested || created.Phase == PhaseClaimed && created.LeaseUntil.After(ps.now) {
				ps.active++
			}
		}
	}
}

// summarize counts each readable key's phase into the summary.
func (ps *pass) summarize() {
	for i, st := range ps.states {
		if ps.skip[i] {
			continue
		}
		if st == nil {
			ps.sum.Phases[ps.keys[i]] = ""
			continue
		}
		ps.sum.Phases[ps.keys[i]] = st.Phase
		switch {
		case Final(st.Phase):
			ps.sum.Done++
		case st.Phase == PhaseRequested:
			ps.sum.Running++
			if st.Stuck {
				ps.sum.Stuck++
			}
		}
	}
}

func (s *Scheduler) read(ctx context.Context, k Key) (*State, error) {
	data, p, err := s.Store.Read(ctx, s.Container, StateName(k))
	if err != nil {
		return nil, err
	}
	st := &State{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("state %s is not JSON: %w", StateName(k), err)
	}
	if st.Table != k.Table || !st.Hour.Equal(k.Hour) {
		return nil, fmt.Errorf("state %s names %s@%s", StateName(k), st.Table, st.Hour.Format(time.RFC3339))
	}
	st.etag = p.ETag
	return st, nil
}

// write stores st under cond and updates its ETag.
func (s *Scheduler) write(ctx context.Context, st *State, cond store.Condition) error {
	st.Updated = s.now()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p, err := s.Store.Write(ctx, s.Container, StateName(st.Key()), append(data, '\n'), cond)
	if err != nil {
		return err
	}
	st.etag = p.ETag
	return nil
}

// update writes st over the version read (If-Match).
func (s *Scheduler) update(ctx context.Context, st *State) error {
	return s.write(ctx, st, store.Condition{IfMatch: st.etag})
}

// request claims k (create, or take over a released or expired claim) and
// POSTs its job. It returns the state as it now stands, nil if another run
// holds the hour.
func (s *Scheduler) request(ctx context.Context, k Key, old *State, owner string, sum *Summary) (*State, error) {
	log := s.log().With(slog.String("table", k.Table), slog.String("hour", k.Hour.Format(time.RFC3339)))
	st, claimed, err := s.claim(ctx, k, old, owner, sum, log)
	if !claimed {
		return st, err
	}
	req := HourRequest(k.Table, k.Hour, s.Config.StorageAccount, s.Config.Containers[k.Table])
	jobID, err := s.API.Create(ctx, req)
	if err != nil {
		return s.notCreated(ctx, st, err, sum, log)
	}
	sum.Requested++
	return s.record(ctx, st, jobID, log)
}

// claim claims k for owner, counting the attempt. Without a claim
// (claimed false) it returns what request returns: the hour adopted (an
// ambiguous create's output found), failed (attempts used up), or lost to
// another run.
func (s *Scheduler) claim(ctx context.Context, k Key, old *State, owner string, sum *Summary, log *slog.Logger) (st *State, claimed bool, err error) {
	now := s.now()
	st = &State{Table: k.Table, Hour: k.Hour}
	cond := store.Condition{IfNoneMatch: "*"}
	if old != nil {
		*st = *old
		cond = store.Condition{IfMatch: old.etag}
		if old.Ambiguous {
			found, err := s.adopt(ctx, st, cond, log)
			if err != nil || found {
				if found {
					sum.Adopted++
				}
				st, err := s.lostOr(st, err, sum)
				return st, false, err
			}
		}
		if st.Attempts >= s.Config.MaxAttempts {
			st.Phase, st.Owner, st.LeaseUntil, st.FinishedAt = PhaseFailed, "", time.Time{}, now
			st.Error = fmt.Sprintf("no job after %d attempts; last error: %s", st.Attempts, cmp.Or(st.Error, "none recorded (a run stopped after its claim)"))
			if err := s.write(ctx, st, cond); err != nil {
				st, err := s.lost(err, sum)
				return st, false, err
			}
			sum.Failed++
			log.Error("export hour failed: attempts used up", slog.String("error", st.Error))
			return st, false, nil
		}
		if old.Owner != "" && old.Error == "" {
			log.Warn("taking over an expired claim: its run stopped before recording a job; if it had created one, this hour is exported twice",
				slog.String("previous_owner", old.Owner), slog.Time("lease_until", old.LeaseUntil))
		}
	}
	st.Phase, st.Owner, st.LeaseUntil = PhaseClaimed, owner, now.Add(s.Config.Lease)
	st.Attempts++
	if err := s.write(ctx, st, cond); err != nil {
		st, err := s.lost(err, sum)
		return st, false, err
	}
	return st, true, nil
}

// notCreated records why the job of the claimed st was not created: an
// authorization failure or a refusal releases the claim (a 429 or an
// authorization failure not counted as an attempt); anything else may have
// created it, and is looked up after the lease.
func (s *Scheduler) notCreated(ctx context.Context, st *State, err error, sum *Summary, log *slog.Logger) (*State, error) {
	st.Error = err.Error()
	switch {
	case NotAuthorized(err):
		// No token, or the identity lacks the role: nothing about the
		// hour, and an outage of hours must not use up its attempts.
		st.LeaseUntil, st.Ambiguous = s.now(), false
		st.Attempts--
		sum.Released++
		log.Error("export job not requested: the identity got no token or no permission (not counted against the hour; asked again next run)",
			slog.String("error", st.Error))
	case Rejected(err):
		// Not created: release the claim so the next run asks again.
		st.LeaseUntil, st.Ambiguous = s.now(), false
		if e := (*Error)(nil); errors.As(err, &e) && e.StatusCode == http.StatusTooManyRequests {
			// Busy (e.g. the 5 active jobs of the workspace): not an
			// attempt at this hour.
			st.Attempts--
		}
		sum.Released++
		log.Warn("export job refused; the hour is asked again next run", slog.String("error", st.Error), slog.Int("attempt", st.Attempts))
	default:
		st.Ambiguous = true
		log.Error("export job request failed ambiguously; after the lease its output folder is looked up before the hour is asked again",
			slog.String("error", st.Error), slog.Time("lease_until", st.LeaseUntil))
	}
	if werr := s.update(ctx, st); werr != nil {
		return st, errors.Join(err, werr)
	}
	return st, err
}

// record writes the job created for st into its state (three tries): a
// job created but not recorded is requested again after the lease, and its
// hour exported twice.
func (s *Scheduler) record(ctx context.Context, st *State, jobID string, log *slog.Logger) (*State, error) {
	st.Phase, st.JobID, st.RequestedAt, st.Owner, st.LeaseUntil, st.Error = PhaseRequested, jobID, s.now(), "", time.Time{}, ""
	st.Ambiguous = false
	st.JobStatus = ""
	log = log.With(slog.String("job_id", jobID))
	wait := cmp.Or(s.WriteRetryWait, 500*time.Millisecond)
	var err error
	for attempt := 1; ; attempt++ {
		err = s.update(ctx, st)
		if err == nil || errors.Is(err, store.ErrConditionNotMet) || attempt == 3 || ctx.Err() != nil {
			break
		}
		time.Sleep(wait)
	}
	switch {
	case errors.Is(err, store.ErrConditionNotMet):
		log.Error("export job created but the claim was taken over meanwhile (the lease is too short): the hour may be exported twice")
		return nil, err
	case err != nil:
		log.Error("export job created but not recorded: after the lease the hour is requested again, and exported twice", slog.String("error", err.Error()))
		return nil, err
	}
	log.Info("export job requested", slog.Int("attempt", st.Attempts))
	return st, nil
}

// lost turns a failed claim write into the result of request: a condition
// failure means another run got there first.
func (s *Scheduler) lost(err error, sum *Summary) (*State, error) {
	if errors.Is(err, store.ErrConditionNotMet) {
		sum.Busy++
		return nil, nil
	}
	return nil, err
}

// lostOr is lost for a write error, else the state as it stands.
func (s *Scheduler) lostOr(st *State, err error, sum *Summary) (*State, error) {
	if err != nil {
		return s.lost(err, sum)
	}
	return st, nil
}

// adopt looks for the job an ambiguous create may have made, in the output
// folder, and records it as the hour's job (If-Match cond) if there is one.
func (s *Scheduler) adopt(ctx context.Context, st *State, cond store.Condition, log *slog.Logger) (bool, error) {
	if s.Output == nil {
		return false, nil
	}
	jobID, err := FindJob(ctx, s.Output, s.Config.Containers[st.Table], st.Hour)
	if err != nil {
		// Unknown still: asking again risks a second export, not a loss.
		log.Warn("could not look up the output of an ambiguous create", slog.String("error", err.Error()))
		return false, nil
	}
	if jobID == "" {
		log.Warn("an ambiguous create left no output for the hour (yet): the hour is asked again, and exported twice if that job runs after all")
		return false, nil
	}
	now := s.now()
	st.Phase, st.JobID, st.RequestedAt, st.Owner, st.LeaseUntil, st.Error, st.Ambiguous = PhaseRequested, jobID, now, "", time.Time{}, "", false
	st.JobStatus = ""
	if err := s.write(ctx, st, cond); err != nil {
		return false, err
	}
	log.Info("export job of an ambiguous create found in its output folder: tracking it, not asking again", slog.String("job_id", jobID))
	return true, nil
}

// FindJob returns the id of a job that exported hour into container of the
// export account, from its output folder
// (workspaceId/<workspace>/jobId/<jobId>/timestamp=<yyyy-MM-ddTHH>/...), or
// "" if there is none.
func FindJob(ctx context.Context, output store.Store, container string, hour time.Time) (string, error) {
	want := "/timestamp=" + hour.UTC().Format("2006-01-02T15") + "/"
	var found string
	errFound := errors.New("found")
	err := output.List(ctx, container, "workspaceId/", func(p store.Properties) error {
		_, rest, ok := strings.Cut(p.Name, "/jobId/")
		if !ok {
			return nil
		}
		id, tail, ok := strings.Cut(rest, "/")
		if !ok || id == "" || !strings.HasPrefix("/"+tail, want) {
			return nil
		}
		found = id
		return errFound
	})
	switch {
	case errors.Is(err, errFound):
		return found, nil
	case errors.Is(err, store.ErrNotExist):
		return "", nil
	}
	return "", err
}

// poll reads the job status of a requested hour and acts on it.
func (s *Scheduler) poll(ctx context.Context, st *State, sum *Summary) error {
	log := s.log().With(slog.String("table", st.Table), slog.String("hour", st.Hour.Format(time.RFC3339)), slog.String("job_id", st.JobID))
	status, err := s.API.Status(ctx, st.JobID)
	now := s.now()
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
			// The job is gone (its state is kept about 7 days after it ends).
			log.Error("export job not found", slog.String("error", err.Error()))
		}
		st.Error, st.CheckedAt = err.Error(), now
		s.checkStuck(st, now, "", 0, log) // a status never readable is stuck too
		s.update(ctx, st)                 // best effort: the next run polls again
		return err
	}
	prev := *st
	st.JobStatus, st.Progress, st.CheckedAt, st.Error = status.JobStatus, status.ResultStatistics.ProgressPercentage, now, ""
	switch status.Class() {
	case StatusSucceeded:
		st.Phase, st.FinishedAt = PhaseSucceeded, now
		if err := s.update(ctx, st); err != nil {
			return s.stale(err)
		}
		sum.Succeeded++
		log.Info("export job succeeded", slog.Int64("rows", status.ResultStatistics.ResultCount),
			slog.Float64("scanned_gb", status.ResultStatistics.ScannedGigabytes))
	case StatusCanceled:
		st.Phase, st.FinishedAt, st.Error = PhaseCanceled, now, "job canceled (a canceled job cannot be retried)"
		if err := s.update(ctx, st); err != nil {
			return s.stale(err)
		}
		sum.Canceled++
		log.Error("export job canceled: the hour is not exported; delete its state blob to request it again", slog.String("state", StateName(st.Key())))
	case StatusFailed:
		if st.Retries >= s.Config.MaxAttempts {
			st.Phase, st.FinishedAt = PhaseFailed, now
			st.Error = fmt.Sprintf("job failed after %d retries", st.Retries)
			if err := s.update(ctx, st); err != nil {
				return s.stale(err)
			}
			sum.Failed++
			log.Error("export job failed, retries used up: the hour is incomplete", slog.Int("retries", st.Retries),
				slog.String("state", StateName(st.Key())))
			return nil
		}
		// Record the decision first: a crash after it cannot retry more
		// than MaxAttempts times.
		st.Retries++
		st.LastRetryAt, st.Stuck, st.StuckSince = now, false, time.Time{}
		if err := s.update(ctx, st); err != nil {
			return s.stale(err)
		}
		op, err := s.API.Retry(ctx, st.JobID)
		if err != nil {
			log.Error("export job retry failed; the next run tries again", slog.String("error", err.Error()), slog.Int("retry", st.Retries))
			st.Error = err.Error()
			if NotAuthorized(err) {
				st.Retries-- // nothing was retried: no token, or no permission
			}
			s.update(ctx, st)
			return err
		}
		sum.Retried++
		log.Warn("export job failed: retried", slog.Int("retry", st.Retries), slog.String("operation_id", op))
	default:
		s.checkStuck(st, now, status.JobStatus, status.ResultStatistics.ProgressPercentage, log)
		if st.Stuck == prev.Stuck && st.JobStatus == prev.JobStatus && prev.Error == "" {
			return nil // nothing worth a write
		}
		if err := s.update(ctx, st); err != nil {
			return s.stale(err)
		}
	}
	return nil
}

// checkStuck marks st stuck, once, when its job has run past StuckAfter
// since it was requested or retried: reported, and no longer counted
// against MaxActive.
func (s *Scheduler) checkStuck(st *State, now time.Time, jobStatus string, progress float64, log *slog.Logger) {
	since := st.RequestedAt
	if st.LastRetryAt.After(since) {
		since = st.LastRetryAt
	}
	if now.Sub(since) > s.Config.StuckAfter && !st.Stuck {
		st.Stuck, st.StuckSince = true, now
		log.Error("export job stuck: it no longer holds a job slot", slog.Duration("running_for", now.Sub(since).Round(time.Minute)),
			slog.String("job_status", jobStatus), slog.Float64("progress", progress))
	}
}

// stale: a condition failure in poll means another run updated the hour
// first, which is fine; anything else is an error.
func (s *Scheduler) stale(err error) error {
	if errors.Is(err, store.ErrConditionNotMet) {
		return nil
	}
	return err
}

// UnreadableStates names the state blobs States could not parse: the
// readable states are returned with it.
type UnreadableStates []error

func (u UnreadableStates) Error() string {
	msgs := make([]string, len(u))
	for i, err := range u {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// States lists the states whose hour is in [from, to] (zero: unbounded),
// sorted by hour then table. A state blob that does not parse does not hide
// the others: they are returned with an UnreadableStates error naming it.
func (s *Scheduler) States(ctx context.Context, from, to time.Time) ([]State, error) {
	var out []State
	var unreadable UnreadableStates
	err := s.Store.List(ctx, s.Container, StatePrefix, func(p store.Properties) error {
		data, _, err := s.Store.Read(ctx, s.Container, p.Name)
		if errors.Is(err, store.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var st State
		if err := json.Unmarshal(data, &st); err != nil {
			unreadable = append(unreadable, fmt.Errorf("state %s is not JSON: %w", p.Name, err))
			return nil
		}
		if (!from.IsZero() && st.Hour.Before(from)) || (!to.IsZero() && st.Hour.After(to)) {
			return nil
		}
		out = append(out, st)
		return nil
	})
	slices.SortFunc(out, func(a, b State) int {
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.Table, b.Table))
	})
	if err == nil && len(unreadable) > 0 {
		err = unreadable
	}
	return out, err
}

func newOwner() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
