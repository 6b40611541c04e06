/** The CLI's Io on this process's stdout/stderr: an in-place status line when stderr is a terminal. */
import type { Io } from './commands/resources.ts';

export function processIo(stream: NodeJS.WriteStream = process.stderr): Io {
  let shown = false;
  const io: Io = {
    out: (s) => process.stdout.write(s + '\n'),
    err: (s) => {
      if (shown) stream.write('\n');
      shown = false;
      stream.write(s + '\n');
    },
  };
  if (stream.isTTY) {
    io.status = (s) => {
      if (s === undefined) {
        if (shown) stream.write('\n');
        shown = false;
        return;
      }
      // One terminal row: a wrapped line could not be rewritten by '\r'.
      const cols = Math.max(20, stream.columns || 80);
      const line = s.length >= cols ? `${s.slice(0, cols - 2)}…` : s;
      stream.write(`\r\x1b[K${line}`);
      shown = true;
    };
  }
  return io;
}
