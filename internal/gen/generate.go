package gen

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// userIP is one of a user's usual addresses.
type userIP struct {
	addr string
	city *city
	plat *platform
}

// user is one member of the tenant. Background rows of a user always come
// from its home country through one of its own IPs (see the package doc).
type user struct {
	upn, display string
	id, device   guid
	country      *country
	ips          [3]userIP
	nIPs         int
	mfa          string  // preferred second factor
	activity     float64 // relative activity, mean 1
	// scenario: the user carries a planted scenario, so its background
	// interactive successes are never rule candidates.
	scenario bool
	// The current sign-in session, carried from hour to hour.
	session   guid
	sessionIP int
}

type world struct {
	tenant, workspace string
	domain            string
	resourceID        string
	users             []user
	planted           map[int][]*row // planted rows by user index, sorted by time
	expected          int64
	generated         [2]int64
	hoursDone         int
	steps             map[authStep]string // used by the generator goroutine only
}

var mfaMethods = []string{"Mobile app notification", "Mobile app notification", "Mobile app notification", "Text message", "OATH verification code", "Windows Hello for Business", "FIDO2 security key"}

func newWorld(o Options) *world {
	r := newRand(o.Seed, streamTenant)
	w := &world{
		tenant:    newGUID(r).String(),
		workspace: newGUID(r).String(),
		domain:    "contoso.com",
		planted:   map[int][]*row{},
		steps:     map[authStep]string{},
	}
	w.resourceID = "/tenants/" + w.tenant + "/providers/Microsoft.aadiam"

	// Office egress IPs, shared by the users of one country.
	offices := map[*country][]userIP{}
	for _, ci := range homeCountries {
		c := countries[ci]
		for range 4 {
			offices[c] = append(offices[c], userIP{addr: randomAddr(r, c.office).String(), city: &c.cities[0]})
		}
	}
	w.newUsers(o, offices)
	w.expected = expectedRows(o, w.users)
	return w
}

// platformsByKind are the indexes of the desktop and mobile platforms, and
// their weights.
func platformsByKind() (desktop, desktopW, mobile, mobileW []int) {
	for i, p := range platforms {
		if p.mobile {
			mobile, mobileW = append(mobile, i), append(mobileW, platformWeights[i])
		} else {
			desktop, desktopW = append(desktop, i), append(desktopW, platformWeights[i])
		}
	}
	return desktop, desktopW, mobile, mobileW
}

// newUsers makes the tenant's users: name, home, activity, and the
// addresses each signs in from (home, maybe a phone, maybe an office).
func (w *world) newUsers(o Options, offices map[*country][]userIP) {
	ur := newRand(o.Seed, streamUsers)
	w.users = make([]user, o.Users)
	seen := make(map[string]int, o.Users)
	desktop, desktopW, mobile, mobileW := platformsByKind()
	norm := math.Exp(0.6 * 0.6 / 2) // mean of exp(0.6 Z)
	for i := range w.users {
		u := &w.users[i]
		u.country = countries[homeCountries[pickWeighted(ur, homeWeights)]]
		first, last := firstNames[ur.IntN(len(firstNames))], lastNames[ur.IntN(len(lastNames))]
		u.display = first + " " + last
		local := strings.ToLower(first + "." + last)
		seen[local]++
		if n := seen[local]; n > 1 {
			local += strconv.Itoa(n)
		}
		u.upn = local + "@" + w.domain
		u.id, u.device = newGUID(ur), newGUID(ur)
		u.mfa = mfaMethods[ur.IntN(len(mfaMethods))]
		u.activity = math.Exp(0.6*ur.NormFloat64()) / norm
		home := &u.country.cities[ur.IntN(len(u.country.cities))]
		desk := &platforms[desktop[pickWeighted(ur, desktopW)]]
		u.ips[0] = userIP{addr: randomAddr(ur, u.country.isp[0]).String(), city: home, plat: desk}
		u.nIPs = 1
		if ur.IntN(10) < 7 { // a phone on the mobile network
			var a netip.Addr
			if ur.IntN(10) < 4 {
				a = randomAddr(ur, u.country.isp6)
			} else {
				a = randomAddr(ur, u.country.isp[ur.IntN(len(u.country.isp))])
			}
			ip := userIP{addr: a.String(), city: &u.country.cities[ur.IntN(len(u.country.cities))], plat: &platforms[mobile[pickWeighted(ur, mobileW)]]}
			if ip.addr != u.ips[0].addr {
				u.ips[u.nIPs] = ip
				u.nIPs++
			}
		}
		if ur.IntN(10) < 5 { // works from an office
			ip := offices[u.country][ur.IntN(4)]
			ip.plat = desk
			if ip.addr != u.ips[0].addr && (u.nIPs == 1 || ip.addr != u.ips[1].addr) {
				u.ips[u.nIPs] = ip
				u.nIPs++
			}
		}
		u.session = newGUID(ur)
	}
}

// expectedRows is how many rows the run will write, about, for progress
// bars.
func expectedRows(o Options, users []user) int64 {
	perCountry := map[*country]int{}
	for i := range users {
		perCountry[users[i].country]++
	}
	var total float64
	for h := range o.Hours {
		hour := o.Start.Add(time.Duration(h) * time.Hour)
		if o.InteractivePerHour > 0 {
			total += float64(o.InteractivePerHour)
			continue
		}
		for _, ci := range homeCountries {
			c := countries[ci]
			total += float64(perCountry[c]) * o.InteractivePerUserDay / 24 * curve(c, hour)
		}
	}
	return int64(total * (1 + o.NIPerInteractive) * (1 + o.DuplicateRate))
}

// curve is the activity weight of the hour starting at t in c's local time:
// the daily curve, lower at weekends.
func curve(c *country, t time.Time) float64 {
	local := t.Add(time.Duration(c.utc) * time.Hour)
	f := dailyCurve[local.Hour()]
	if wd := local.Weekday(); wd == time.Saturday || wd == time.Sunday {
		f *= 0.3
	}
	return f
}

// lambda is u's mean number of interactive sign-ins in the hour at t.
func (w *world) lambda(o Options, u *user, t time.Time) float64 {
	if o.InteractivePerHour > 0 {
		return float64(o.InteractivePerHour) / float64(len(w.users)) * u.activity
	}
	return o.InteractivePerUserDay / 24 * curve(u.country, t) * u.activity
}

const (
	batchRows = 4096
	// maxRetryRows bounds the rows an hour's retry file holds per table.
	maxRetryRows = 50_000
	hourMicros   = int64(time.Hour / time.Microsecond)
)

// pickIP returns the index of one of u's IPs: mostly home, then phone, office.
func pickIP(r *rand.Rand, u *user) int {
	switch u.nIPs {
	case 1:
		return 0
	case 2:
		if r.IntN(10) < 7 {
			return 0
		}
		return 1
	}
	switch n := r.IntN(20); {
	case n < 11:
		return 0
	case n < 15:
		return 1
	}
	return 2
}

func randomToken(r *rand.Rand) (t [16]byte) {
	g := newGUID(r) // its version bits are harmless in a token id
	copy(t[:], g[:])
	t[6], t[8] = byte(r.Uint32()), byte(r.Uint32())
	return t
}

// interactiveRow fills dst with a background SigninLogs row of u at micros.
func (w *world) interactiveRow(r *rand.Rand, u *user, micros int64, dst *row) {
	ipi := pickIP(r, u)
	ip := &u.ips[ipi]
	a := &apps[interactiveApps[pickWeighted(r, interactiveAppWeights)]]
	res := pickOutcome(r, interactiveFailures)
	authReq, ca := "multiFactorAuthentication", "success"
	switch n := r.IntN(100); {
	case res.caFailure:
		ca = "failure"
		if n < 50 {
			authReq = "singleFactorAuthentication"
		}
	case u.scenario && res == successOutcome:
		// never a candidate: see the package doc
	case n < 55:
	case n < 70:
		ca = "notApplied"
	case n < 90:
		authReq, ca = "singleFactorAuthentication", "notApplied"
	default:
		authReq = "singleFactorAuthentication"
	}
	mfa := ""
	if authReq == "multiFactorAuthentication" {
		mfa = u.mfa
	}
	ua := ip.plat.nativeUA
	if a.clientAppBrowser {
		ua = ip.plat.browserUA
	}
	*dst = row{
		table: signin.Interactive, micros: micros, u: u, upn: u.upn,
		ip: ip.addr, country: u.country, city: ip.city, app: a, res: res,
		authReq: authReq, ca: ca, id: newGUID(r), corr: newGUID(r), session: newGUID(r),
		token: randomToken(r), ua: ua, plat: ip.plat, mfa: mfa,
		duration: int64(r.IntN(1200)),
	}
	if res == successOutcome {
		u.session, u.sessionIP = dst.session, ipi
	}
}

var incomingTypes = []string{"refreshToken", "refreshToken", "primaryRefreshToken", "none"}

// nonInteractiveRow fills dst with a background token refresh of u's
// current session at micros.
func (w *world) nonInteractiveRow(r *rand.Rand, u *user, micros int64, session guid, sessionIP int, dst *row) {
	ipi := sessionIP
	if r.IntN(5) == 0 {
		ipi = pickIP(r, u)
	}
	ip := &u.ips[ipi]
	a := &apps[niApps[pickWeighted(r, niAppWeights)]]
	authReq, ca := "singleFactorAuthentication", "notApplied"
	if r.IntN(10) < 3 {
		authReq = "multiFactorAuthentication"
	}
	if r.IntN(10) < 4 {
		ca = "success"
	}
	ua := ip.plat.nativeUA
	if a.clientAppBrowser {
		ua = ip.plat.browserUA
	}
	*dst = row{
		table: signin.NonInteractive, micros: micros, u: u, upn: u.upn,
		ip: ip.addr, country: u.country, city: ip.city, app: a, res: pickOutcome(r, niFailures),
		authReq: authReq, ca: ca, id: newGUID(r), corr: newGUID(r), session: session,
		token: randomToken(r), ua: ua, plat: ip.plat,
		incoming: incomingTypes[r.IntN(len(incomingTypes))],
		niDetail: niSuccessDetails[r.IntN(len(niSuccessDetails))],
	}
}

// pendingRow is a row buffered for a time-ordered hour.
type pendingRow struct {
	r       row
	planted bool
}

// roam makes r, a background row, roam with probability o.RoamRate: sent
// from another home country, through an address of an ISP there.
func roam(r *rand.Rand, o Options, dst *row) {
	if dst.u.scenario || r.Float64() >= o.RoamRate {
		return
	}
	var c *country
	for c == nil || c == dst.u.country {
		c = countries[homeCountries[r.IntN(len(homeCountries))]]
	}
	dst.country, dst.city = c, &c.cities[r.IntN(len(c.cities))]
	dst.ip = randomAddr(r, c.isp[r.IntN(len(c.isp))]).String()
}

// sessionAt is an interactive success that started a session.
type sessionAt struct {
	micros int64
	id     guid
	ip     int
}

// generate produces every row, hour by hour and user by user, and hands
// batches to the two table writers.
func (w *world) generate(ctx context.Context, o Options, tables [2]*tableWriter, progress func(Progress)) error {
	g := &generation{w: w, ctx: ctx, o: o, tables: tables, progress: progress}
	for i, tw := range tables {
		g.batches[i] = newBatch(w, tw.cols, tw.free)
	}
	for h := range o.Hours {
		if err := ctx.Err(); err != nil {
			return err
		}
		hour := o.Start.Add(time.Duration(h) * time.Hour)
		hr := newRand(o.Seed, streamHours+uint64(h))
		for ui := range w.users {
			if err := g.userHour(hr, ui, hour); err != nil {
				return err
			}
		}
		if err := g.endHour(hr, hour); err != nil {
			return err
		}
		w.hoursDone = h + 1
		if progress != nil {
			progress(w.progress(o, tables))
		}
	}
	return nil
}

// generation is one run of generate: the batches it fills for the two table
// writers, and the buffers it reuses from user to user and hour to hour.
type generation struct {
	w        *world
	ctx      context.Context
	o        Options
	tables   [2]*tableWriter
	progress func(Progress)
	batches  [2]*batch

	r        row
	times    []int64
	sessions []sessionAt
	retry    [2][]row
	pending  [2][]pendingRow // the hour's rows, when TimeOrdered
}

// send hands table i's batch to its writer.
func (g *generation) send(i int, hour time.Time, retry bool) error {
	rec := g.batches[i].take()
	select {
	case g.tables[i].in <- msg{hour: hour, rec: rec, retry: retry}:
	case <-g.ctx.Done():
		return g.ctx.Err()
	}
	if g.progress != nil {
		g.progress(g.w.progress(g.o, g.tables))
	}
	return nil
}

// add appends r to table i's batch; planted rows are repeated only when
// they ask for it, so Planted.Duplicated is exact.
func (g *generation) add(hr *rand.Rand, i int, r *row, hour time.Time, planted bool) error {
	g.batches[i].add(r)
	g.w.generated[i]++
	if (r.dup || (!planted && g.o.DuplicateRate > 0 && hr.Float64() < g.o.DuplicateRate)) && len(g.retry[i]) < maxRetryRows {
		g.retry[i] = append(g.retry[i], *r)
	}
	if g.batches[i].n >= batchRows {
		return g.send(i, hour, false)
	}
	return nil
}

// emit hands r on: to add, or, time-ordered, to the hour's buffer.
func (g *generation) emit(hr *rand.Rand, i int, r *row, hour time.Time, planted bool) error {
	if g.o.TimeOrdered {
		g.pending[i] = append(g.pending[i], pendingRow{*r, planted})
		return nil
	}
	return g.add(hr, i, r, hour, planted)
}

// userHour emits one user's rows of the hour: its interactive sign-ins,
// then its non-interactive ones (each in the latest session started before
// it), then the rows planted in the hour.
func (g *generation) userHour(hr *rand.Rand, ui int, hour time.Time) error {
	u := &g.w.users[ui]
	base := hour.UnixMicro()
	lam := g.w.lambda(g.o, u, hour)
	nI, nN := poisson(hr, lam), poisson(hr, lam*g.o.NIPerInteractive)
	prevSession, prevIP := u.session, u.sessionIP
	if err := g.interactive(hr, u, nI, hour); err != nil {
		return err
	}
	if err := g.nonInteractive(hr, u, nN, hour, prevSession, prevIP); err != nil {
		return err
	}
	for _, pr := range g.w.planted[ui] {
		if pr.micros >= base && pr.micros < base+hourMicros {
			if err := g.emit(hr, int(pr.table), pr, hour, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// randomTimes are n times of the hour, in order.
func (g *generation) randomTimes(hr *rand.Rand, n int, hour time.Time) []int64 {
	base := hour.UnixMicro()
	g.times = g.times[:0]
	for range n {
		g.times = append(g.times, base+hr.Int64N(hourMicros))
	}
	slices.Sort(g.times)
	return g.times
}

// interactive emits n interactive sign-ins of u, noting the sessions the
// successful ones start.
func (g *generation) interactive(hr *rand.Rand, u *user, n int, hour time.Time) error {
	g.sessions = g.sessions[:0]
	for _, t := range g.randomTimes(hr, n, hour) {
		g.w.interactiveRow(hr, u, t, &g.r)
		if g.r.res == successOutcome {
			g.sessions = append(g.sessions, sessionAt{t, g.r.session, u.sessionIP})
		}
		if g.o.RoamRate > 0 {
			roam(hr, g.o, &g.r)
		}
		if err := g.emit(hr, 0, &g.r, hour, false); err != nil {
			return err
		}
	}
	return nil
}

// nonInteractive emits n non-interactive sign-ins of u, each in the latest
// session started before it (the one of the hour before, prevSession from
// prevIP, when none).
func (g *generation) nonInteractive(hr *rand.Rand, u *user, n int, hour time.Time, prevSession guid, prevIP int) error {
	for _, t := range g.randomTimes(hr, n, hour) {
		s, sip := prevSession, prevIP
		for _, sa := range g.sessions { // refresh the latest session started before t
			if sa.micros <= t {
				s, sip = sa.id, sa.ip
			}
		}
		g.w.nonInteractiveRow(hr, u, t, s, sip, &g.r)
		if g.o.RoamRate > 0 {
			roam(hr, g.o, &g.r)
		}
		if err := g.emit(hr, 1, &g.r, hour, false); err != nil {
			return err
		}
	}
	return nil
}

// endHour adds the hour's time-ordered rows, sends what the batches hold,
// then the hour's retry file (the duplicated rows), and closes the hour.
func (g *generation) endHour(hr *rand.Rand, hour time.Time) error {
	for i := range g.pending {
		// Stable: rows of one microsecond keep the generation order.
		slices.SortStableFunc(g.pending[i], func(a, b pendingRow) int { return cmp.Compare(a.r.micros, b.r.micros) })
		for k := range g.pending[i] {
			if err := g.add(hr, i, &g.pending[i][k].r, hour, g.pending[i][k].planted); err != nil {
				return err
			}
		}
		clear(g.pending[i])
		g.pending[i] = g.pending[i][:0]
	}
	for i := range g.batches {
		if g.batches[i].n > 0 {
			if err := g.send(i, hour, false); err != nil {
				return err
			}
		}
		if len(g.retry[i]) > 0 {
			for j := range g.retry[i] {
				g.batches[i].add(&g.retry[i][j])
				g.w.generated[i]++
			}
			g.retry[i] = g.retry[i][:0]
			if err := g.send(i, hour, true); err != nil {
				return err
			}
		}
		select {
		case g.tables[i].in <- msg{hour: hour, end: true}:
		case <-g.ctx.Done():
			return g.ctx.Err()
		}
	}
	return nil
}

func (w *world) progress(o Options, tables [2]*tableWriter) Progress {
	return Progress{
		Rows: w.generated[0] + w.generated[1], ExpectedRows: w.expected,
		Interactive: w.generated[0], NonInteractive: w.generated[1],
		Files: tables[0].done.Load() + tables[1].done.Load(), Hour: w.hoursDone, Hours: o.Hours,
	}
}
