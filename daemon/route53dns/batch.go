package route53dns

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// Route 53's limits on one ChangeResourceRecordSets request.
const (
	maxBatchChanges = 1000  // Change elements
	maxBatchRecords = 1000  // ResourceRecord elements
	maxBatchChars   = 32000 // characters of all Value elements
)

// flushTimeout bounds the work of one batch (reads, change, retries).
const flushTimeout = 2 * time.Minute

// op is one value to add to or remove from a TXT set, queued for its zone.
type op struct {
	name  string // canonical
	value string
	add   bool
	ctx   context.Context // the caller's: an add whose caller is gone is dropped unsent
	done  chan opResult   // buffered 1; receives exactly one result
}

type opResult struct {
	changeID string // "" when nothing had to change
	err      error
}

func (o *op) finish(id string, err error) { o.done <- opResult{id, err} }

func (o *op) key(zoneID string) entryKey { return entryKey{zoneID, o.name, o.value} }

// batcher is one zone's write queue. One drain goroutine at a time empties
// it; it exists only while the queue is not empty.
type batcher struct {
	mu      sync.Mutex // guards queue and running
	queue   []*op
	running bool
}

// len returns the number of queued ops.
func (b *batcher) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// setKey names a TXT record set.
type setKey struct{ zoneID, name string }

// knownSet is the state of a TXT set as last read or written: rs nil means
// there is none.
type knownSet struct {
	rs *types.ResourceRecordSet
	at time.Time
}

// submit queues the addition or removal of value at tgt and waits for the
// batch that carries it. If ctx ends first it returns ctx's error: a
// removal then still happens, an add not yet sent is dropped.
func (p *Provider) submit(ctx context.Context, tgt target, value string, add bool) (string, error) {
	o := &op{name: tgt.name, value: value, add: add, ctx: ctx, done: make(chan opResult, 1)}
	p.mu.Lock()
	b := p.batchers[tgt.zoneID]
	if b == nil {
		b = &batcher{}
		p.batchers[tgt.zoneID] = b
	}
	p.mu.Unlock()
	b.mu.Lock()
	b.queue = append(b.queue, o)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go p.drain(tgt.zoneID, b)
	}
	select {
	case r := <-o.done:
		return r.changeID, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("route53: updating %s: %w", tgt.name, ctx.Err())
	}
}

// drain waits BatchWindow for writes to gather, then sends the queue batch
// by batch until it is empty; writes queued while a batch is in flight go
// in the next one. Before taking each batch it also waits (up to
// maxBudgetWait) for the request budget to hold a token: when the budget,
// not the window, is what a batch would wait for, the writes arriving
// meanwhile join this batch instead of the next, so the calls per write
// fall as the load grows. It ends when the queue is empty.
func (p *Provider) drain(zoneID string, b *batcher) {
	if p.gather != nil {
		p.gather(b.len)
	} else {
		time.Sleep(p.opts.BatchWindow)
	}
	for {
		p.awaitBudget(maxBudgetWait)
		b.mu.Lock()
		ops := takeBatch(&b.queue)
		if len(ops) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		p.flush(ctx, zoneID, ops)
		cancel()
	}
}

// maxBudgetWait bounds drain's wait for a token of the request budget:
// callers that reserve tokens ahead (GetChange polls) can keep the bucket
// empty, and a batch must not starve behind them; after this it queues for
// a token like every other call.
const maxBudgetWait = 2 * time.Second

// awaitBudget returns once the request budget holds a whole token, or after
// bound. It takes no token.
func (p *Provider) awaitBudget(bound time.Duration) {
	deadline := time.Now().Add(bound)
	for {
		short := 1 - p.limit.Tokens() // tokens missing
		if short <= 0 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		d := time.Duration(short / float64(p.limit.Limit()) * float64(time.Second))
		time.Sleep(min(max(d, 10*time.Millisecond), left))
	}
}

// takeBatch removes from q the ops of at most maxBatchChanges/2 names (each
// set needs a DELETE and a CREATE), in queue order.
func takeBatch(q *[]*op) []*op {
	names := map[string]bool{}
	var take, keep []*op
	for _, o := range *q {
		if !names[o.name] && len(names) == maxBatchChanges/2 {
			keep = append(keep, o)
			continue
		}
		names[o.name] = true
		take = append(take, o)
	}
	*q = keep
	return take
}

// setPlan is the change of one record set in a batch.
type setPlan struct {
	name    string
	ops     []*op
	cur     *types.ResourceRecordSet // as read or last written; nil if none
	want    *types.ResourceRecordSet // nil to delete the set
	changes []types.Change
}

// flush applies ops (one zone) in as few change batches as the limits allow,
// in phases: group the ops by set and journal the adds (groupOps), then per
// attempt read what is unknown, plan every set (planAll) and send the
// chunks (sendChunks). Each set is compare-and-swapped; sets named in a
// rejection are re-read and the batch resent, up to p.cas attempts per set.
func (p *Provider) flush(ctx context.Context, zoneID string, ops []*op) {
	byName := p.groupOps(zoneID, ops)
	fs := &flushState{conflicts: map[string]int{}, direct: map[string]bool{}}
	for attempt := 1; len(byName) > 0; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, p.cas.delay(attempt-1, p.rnd())); err != nil {
				failAll(byName, fmt.Errorf("route53: updating zone %s: %w", zoneID, err))
				return
			}
		}
		if err := p.readUnknown(ctx, zoneID, byName, fs.direct); err != nil {
			failAll(byName, err)
			return
		}
		for _, chunk := range chunks(p.planAll(zoneID, byName)) {
			p.sendChunk(ctx, zoneID, chunk, byName, fs, attempt)
		}
	}
}

// flushState is what one flush keeps across its attempts.
type flushState struct {
	conflicts map[string]int  // rejections per name
	direct    map[string]bool // names to read on their own page
}

// groupOps drops adds whose caller is gone, groups the rest by set name and
// records the adds in the journal before anything is written, so that a
// crash after the change cannot leave a value nobody knows about. Adds the
// journal could not record fail.
func (p *Provider) groupOps(zoneID string, ops []*op) map[string][]*op {
	byName := map[string][]*op{}
	var adds []entryKey
	for _, o := range ops {
		if o.add && o.ctx.Err() != nil {
			o.finish("", fmt.Errorf("route53: updating %s: %w", o.name, o.ctx.Err()))
			continue
		}
		byName[o.name] = append(byName[o.name], o)
		if o.add {
			adds = append(adds, o.key(zoneID))
		}
	}
	if len(adds) == 0 {
		return byName
	}
	if err := p.journal.persist(adds, p.now()); err != nil {
		for name, os := range byName {
			byName[name] = slices.DeleteFunc(os, func(o *op) bool {
				if o.add {
					o.finish("", err)
				}
				return o.add
			})
		}
	}
	return byName
}

// planAll plans every set of byName, finishing (and dropping from byName)
// those already as wanted; the plans are in name order.
func (p *Provider) planAll(zoneID string, byName map[string][]*op) []*setPlan {
	var plans []*setPlan
	for name, os := range byName {
		sp := p.planSet(zoneID, name, os)
		if sp.changes == nil {
			p.finishSet(zoneID, sp, "")
			delete(byName, name)
			continue
		}
		plans = append(plans, sp)
	}
	slices.SortFunc(plans, func(a, b *setPlan) int { return compareNames(a.name, b.name) })
	return plans
}

// sendChunk sends one batch and settles its sets: done ones finish and
// leave byName; on a rejection the sets it names are forgotten, read on
// their own next attempt, and fail once they ran out of attempts; any
// other error fails the whole chunk.
func (p *Provider) sendChunk(ctx context.Context, zoneID string, chunk []*setPlan, byName map[string][]*op, fs *flushState, attempt int) {
	id, err := p.change(ctx, zoneID, chunk)
	if err == nil {
		for _, sp := range chunk {
			p.remember(zoneID, sp.name, sp.want)
			p.finishSet(zoneID, sp, id)
			delete(byName, sp.name)
		}
		return
	}
	icb, ok := isInvalidChangeBatch(err)
	if !ok {
		for _, sp := range chunk {
			failOps(sp.ops, err)
			delete(byName, sp.name)
		}
		return
	}
	named := rejectedSets(icb.Messages, chunk)
	p.log.Info("dns.txt_conflict", "zone", zoneID, "sets", len(named), "batch", len(chunk), "attempt", attempt)
	for _, sp := range named {
		p.forget(zoneID, sp.name)
		fs.direct[sp.name] = true
		fs.conflicts[sp.name]++
		if fs.conflicts[sp.name] >= p.cas.attempts {
			failOps(sp.ops, fmt.Errorf("route53: updating %s: %w after %d attempts: %v: %s",
				sp.name, errCASExhausted, fs.conflicts[sp.name], err, strings.Join(icb.Messages, "; ")))
			delete(byName, sp.name)
		}
	}
}

// finishSet reports the result of a set's ops and updates the journal:
// removed values are forgotten.
func (p *Provider) finishSet(zoneID string, sp *setPlan, id string) {
	var gone []entryKey
	for _, o := range sp.ops {
		if !o.add {
			gone = append(gone, o.key(zoneID))
		}
	}
	var jerr error
	if len(gone) > 0 {
		jerr = p.journal.forget(gone)
		if jerr != nil {
			p.log.Error("dns.journal_write_failed", "error", jerr)
		}
	}
	for _, o := range sp.ops {
		o.finish(id, nil)
	}
}

func failOps(ops []*op, err error) {
	for _, o := range ops {
		o.finish("", err)
	}
}

func failAll(byName map[string][]*op, err error) {
	for _, os := range byName {
		failOps(os, err)
	}
}

// planSet merges the set's ops into its known state. changes is nil when
// the set already is as wanted.
func (p *Provider) planSet(zoneID, name string, ops []*op) *setPlan {
	p.mu.Lock()
	ks := p.sets[setKey{zoneID, name}]
	p.mu.Unlock()
	sp := &setPlan{name: name, ops: ops, cur: ks.rs}
	add, del := map[string]bool{}, map[string]bool{}
	for _, o := range ops { // in queue order: the last word on a value wins
		add[o.value], del[o.value] = o.add, !o.add
	}
	var keep []types.ResourceRecord // raw records kept as read
	have := map[string]bool{}
	changed := false
	if sp.cur != nil {
		for _, rr := range sp.cur.ResourceRecords {
			v, err := unquoteTXT(aws.ToString(rr.Value))
			if err == nil && del[v] {
				changed = true
				continue
			}
			have[v] = true
			keep = append(keep, rr)
		}
	}
	for _, o := range ops {
		if add[o.value] && !have[o.value] {
			have[o.value] = true
			keep = append(keep, types.ResourceRecord{Value: aws.String(quoteTXT(o.value))})
			changed = true
		}
	}
	if !changed {
		return sp
	}
	sp.changes = []types.Change{}
	if sp.cur != nil {
		sp.changes = append(sp.changes, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &types.ResourceRecordSet{
			Name:            sp.cur.Name,
			Type:            types.RRTypeTxt,
			TTL:             sp.cur.TTL,
			ResourceRecords: sp.cur.ResourceRecords,
		}})
	}
	if len(keep) > 0 {
		sp.want = &types.ResourceRecordSet{
			Name:            aws.String(name),
			Type:            types.RRTypeTxt,
			TTL:             aws.Int64(p.opts.TTL),
			ResourceRecords: keep,
		}
		sp.changes = append(sp.changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: sp.want})
	}
	return sp
}

// chunks splits plans into batches within Route 53's limits, keeping each
// set's DELETE and CREATE together.
func chunks(plans []*setPlan) [][]*setPlan {
	var out [][]*setPlan
	var cur []*setPlan
	changes, records, chars := 0, 0, 0
	for _, sp := range plans {
		c, r, n := len(sp.changes), 0, 0
		for _, ch := range sp.changes {
			for _, rr := range ch.ResourceRecordSet.ResourceRecords {
				r++
				n += len(aws.ToString(rr.Value))
			}
		}
		if len(cur) > 0 && (changes+c > maxBatchChanges || records+r > maxBatchRecords || chars+n > maxBatchChars) {
			out = append(out, cur)
			cur, changes, records, chars = nil, 0, 0, 0
		}
		cur = append(cur, sp)
		changes, records, chars = changes+c, records+r, chars+n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// change sends one batch and returns its change ID.
func (p *Provider) change(ctx context.Context, zoneID string, batch []*setPlan) (string, error) {
	var changes []types.Change
	for _, sp := range batch {
		changes = append(changes, sp.changes...)
	}
	var out *route53.ChangeResourceRecordSetsOutput
	err := p.call(ctx, "ChangeResourceRecordSets", "hostedzone/"+zoneID, func(ctx context.Context) error {
		var err error
		out, err = p.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zoneID),
			ChangeBatch:  &types.ChangeBatch{Changes: changes, Comment: aws.String("edgecert dns-01")},
		}, noSDKRetry)
		return err
	})
	if err != nil {
		return "", err
	}
	return trimID(aws.ToString(out.ChangeInfo.Id), "change"), nil
}

// setNameRE finds the record set names in InvalidChangeBatch messages
// ("Tried to delete resource record set [name='x.', type='TXT'] but ...").
var setNameRE = regexp.MustCompile(`name='([^']+)'`)

// rejectedSets returns the sets of batch that Route 53's messages name; if
// they name none of them, every set of the batch.
func rejectedSets(msgs []string, batch []*setPlan) []*setPlan {
	named := map[string]bool{}
	for _, m := range msgs {
		for _, sub := range setNameRE.FindAllStringSubmatch(m, -1) {
			named[canonical(sub[1])] = true
		}
	}
	var out []*setPlan
	for _, sp := range batch {
		if named[sp.name] {
			out = append(out, sp)
		}
	}
	if len(out) == 0 {
		return batch
	}
	return out
}

// remember records the state of a set after our write.
func (p *Provider) remember(zoneID, name string, rs *types.ResourceRecordSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sets[setKey{zoneID, name}] = knownSet{rs: rs, at: p.now()}
}

// forget drops what is known about a set (it changed behind our back).
func (p *Provider) forget(zoneID, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sets, setKey{zoneID, name})
}

// readUnknown reads the sets of byName whose state is not known (or too
// old): the names in direct each from its own start point, the others
// together, page by page. A name inside a range a recent page listed is
// known without a read.
func (p *Provider) readUnknown(ctx context.Context, zoneID string, byName map[string][]*op, direct map[string]bool) error {
	now := p.now()
	var shared, own []string
	p.mu.Lock()
	spans := freshSpans(p.spans[zoneID], now, p.cacheTTL)
	for name := range byName {
		if direct[name] { // rejected: read on its own, whatever is known
			own = append(own, name)
			continue
		}
		ks, ok := p.sets[setKey{zoneID, name}]
		if ok && now.Sub(ks.at) < p.cacheTTL {
			continue
		}
		if i := slices.IndexFunc(spans, func(s span) bool { return s.covers(name) }); i >= 0 {
			p.sets[setKey{zoneID, name}] = knownSet{at: spans[i].at} // listed as absent
			continue
		}
		shared = append(shared, name)
	}
	p.mu.Unlock()
	if len(shared) > 0 {
		if err := p.readSets(ctx, zoneID, shared); err != nil {
			return err
		}
	}
	for _, name := range own {
		if err := p.readSets(ctx, zoneID, []string{name}); err != nil {
			return err
		}
	}
	return nil
}
