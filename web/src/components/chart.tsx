/**
 * A small line chart (SVG, no library): per-instance rate, errors and
 * latency over the last minutes, sampled by the console itself.
 */
import { useId } from 'react';

export interface Series {
  label: string;
  values: (number | null)[];
  className: string;
}

export function LineChart({
  title,
  series,
  unit,
  height = 80,
  max: fixedMax,
}: {
  title: string;
  series: Series[];
  unit: string;
  height?: number;
  max?: number;
}) {
  const id = useId();
  const width = 280;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const max = fixedMax ?? Math.max(1e-9, ...all) * 1.15;
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i: number): number => (i / (n - 1)) * width;
  const y = (v: number): number => height - (Math.min(v, max) / max) * (height - 4) - 2;
  const last = series.map((s) => [...s.values].reverse().find((v) => v !== null) ?? null);
  return (
    <figure className="chart" aria-labelledby={id}>
      <figcaption id={id}>
        <span>{title}</span>
        <span className="chart-values">
          {series.map((s, i) => (
            <span key={s.label} className={s.className}>
              {s.label} {last[i] === null || last[i] === undefined ? '—' : `${fmt(last[i] as number)}${unit}`}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={title}>
        <line x1="0" x2={width} y1={height - 1} y2={height - 1} className="chart-axis" />
        {series.map((s) => {
          const segs: string[] = [];
          let pen = false;
          s.values.forEach((v, i) => {
            if (v === null || !Number.isFinite(v)) {
              pen = false;
              return;
            }
            segs.push(`${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`);
            pen = true;
          });
          return <path key={s.label} d={segs.join(' ')} className={`chart-line ${s.className}`} />;
        })}
      </svg>
    </figure>
  );
}

function fmt(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
