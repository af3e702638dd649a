package postgres

// Change notices: every transaction that appends to the change feed also
// runs pg_notify on the channel of the store's schema, and PostgreSQL
// delivers the notice to every session listening on that channel when the
// transaction commits. WaitForChange listens on a connection of its own,
// so that a server reads the feed as soon as another instance (or
// `authlined user`) changed something, rather than at its next poll.
//
// Notices are a shortcut, not the record: the feed is. A notice lost with
// a broken connection is made up for by the follower's periodic poll, and
// by WaitForChange returning at once after it (re)starts listening. Behind
// a pooler in transaction mode (PgBouncer), LISTEN does not stick to a
// session, so notices may never arrive; followers then poll only.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authline/authline/server/store"
)

var _ store.ChangeNotifier = (*Store)(nil)

// channelSQL is the name of the change channel of the current schema,
// the one the store's tables live in (see migrate):
// authline_changes_<schema>, so that stores in other schemas of the same
// database are not woken. A channel name has at most 63 bytes; for a
// longer schema name the channel is named by a hash of it instead. Two
// schemas that share a channel only wake each other's followers for
// nothing.
const channelSQL = `(SELECT CASE WHEN octet_length(s) <= 46 THEN 'authline_changes_' || s
	ELSE 'authline_changes_' || to_hex(hashtext(s)) END
	FROM (SELECT current_schema() AS s) AS cur)`

// notifyChange queues a notice on the change channel, which PostgreSQL
// sends when tx commits (and drops if it rolls back). Notices of one
// transaction on one channel are folded into one.
func notifyChange(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify(`+channelSQL+`, '')`)
	return err
}

// pingInterval is how long WaitForChange waits for a notice before it
// checks that the listening connection still works: one that died without
// a word (a NAT or firewall forgetting an idle flow) would otherwise leave
// it waiting for notices that can never come. A variable for the tests.
var pingInterval = time.Minute

const (
	// pingTimeout bounds that check.
	pingTimeout = 10 * time.Second
	// closeTimeout bounds the goodbye to the server when the listening
	// connection is dropped.
	closeTimeout = 5 * time.Second
)

// errClosed is what WaitForChange reports, as ErrUnavailable, once the
// store is closed.
var errClosed = errors.New("store closed")

// notifier is the state of WaitForChange. Its zero value is ready.
type notifier struct {
	once sync.Once
	// sem holds the one WaitForChange at work (and Close, when it drops
	// the connection); it guards conn.
	sem  chan struct{}
	conn *pgx.Conn // listening on the change channel; nil if none

	mu     sync.Mutex
	closed bool               // the store is closed: no more listening
	cancel context.CancelFunc // ends the WaitForChange at work, if any
}

func (n *notifier) init() { n.once.Do(func() { n.sem = make(chan struct{}, 1) }) }

// WaitForChange implements store.ChangeNotifier. The first call listens
// on the change channel, on a connection of its own, and returns at once:
// changes made before that sent no notice to this store. Later calls wait
// for a notice, which a transaction of any process on the same schema
// sends as it commits a change; notices that came between two calls are
// kept for the next one.
//
// If the connection breaks (the server restarts, an admin ends the
// session), the call returns an error wrapping store.ErrUnavailable; the
// next call listens on a new connection, and again returns at once. When
// ctx ends, the connection stays and keeps listening for the next call.
// After Close every call fails with ErrUnavailable, and a call in progress
// returns at once.
//
// Concurrent calls wait for each other, and each notice wakes only one of
// them: one goroutine should follow the feed for the process.
func (s *Store) WaitForChange(ctx context.Context) error {
	const op = "wait for change"
	n := &s.notify
	n.init()
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return s.err(op, ctx.Err())
	}
	defer func() { <-n.sem }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.mu.Lock()
	closed := n.closed
	if !closed {
		n.cancel = cancel // for Close
	}
	n.mu.Unlock()
	if closed {
		return s.err(op, errClosed)
	}
	defer func() {
		n.mu.Lock()
		n.cancel = nil
		n.mu.Unlock()
	}()

	if n.conn == nil {
		conn, err := s.listen(ctx)
		if err != nil {
			return s.err(op, err)
		}
		n.conn = conn
		return nil
	}
	for {
		wctx, wcancel := context.WithTimeout(ctx, pingInterval)
		_, err := n.conn.WaitForNotification(wctx)
		wcancel()
		switch {
		case err == nil:
			return nil
		case n.conn.IsClosed():
			n.drop()
			return s.lost(op, err)
		case ctx.Err() != nil:
			// pgx leaves the connection usable after a wait cut short
			// by the context; notices keep arriving for the next call.
			return s.err(op, err)
		case wctx.Err() == nil:
			// Failed, not for the deadline: no telling what state the
			// connection is in.
			n.drop()
			return s.lost(op, err)
		}
		// Quiet for pingInterval: is the connection still there?
		pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
		err = n.conn.Ping(pctx)
		pcancel()
		if err != nil {
			n.drop()
			return s.lost(op, err)
		}
	}
}

// lost reports the loss of the listening connection, which is always
// store.ErrUnavailable, whatever pgx said about it.
func (s *Store) lost(op string, err error) error {
	if err := s.err(op, err); errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
}

// listen takes a connection from the pool, made as the pool makes them
// (DSN, TLS, search_path), and listens on the change channel with it. The
// connection leaves the pool for good: it does not count against
// pool_max_conns, so even a pool of one connection is not starved by the
// listener, and no other caller is ever handed a connection that
// collects notices.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	var channel string
	err = conn.QueryRow(ctx, `SELECT `+channelSQL).Scan(&channel)
	if err == nil {
		_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize())
	}
	if err != nil {
		discard(conn)
		return nil, err
	}
	return conn, nil
}

// drop closes the listening connection; under n.sem.
func (n *notifier) drop() {
	discard(n.conn)
	n.conn = nil
}

// discard closes a listening connection. It waits for pgx's clean-up of
// the connection, so that no goroutine of it outlives the call (for long).
func discard(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	conn.Close(ctx)
	select {
	case <-conn.PgConn().CleanupDone():
	case <-ctx.Done():
	}
}

// stopListening ends a WaitForChange in progress, keeps later ones from
// listening, and closes the listening connection; Close calls it.
func (s *Store) stopListening() {
	n := &s.notify
	n.init()
	n.mu.Lock()
	n.closed = true
	if n.cancel != nil {
		n.cancel()
	}
	n.mu.Unlock()
	n.sem <- struct{}{} // the call in progress returns promptly, cancelled
	if n.conn != nil {
		n.drop()
	}
	<-n.sem
}
