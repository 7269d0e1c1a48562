/** A grouped bar chart as a standalone SVG: a few dozen lines instead of a charting library. */
export interface BarChart {
  title: string;
  unit: string;
  groups: Array<{ label: string; bars: Array<{ name: string; value: number }> }>;
}

const COLOURS = ['#8da0cb', '#fc8d62', '#66c2a5', '#e78ac3'];
const escape = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

export function barChart({ title, unit, groups }: BarChart): string {
  const width = 640;
  const height = 320;
  const top = 40;
  const bottom = 50;
  const left = 20;
  const plotHeight = height - top - bottom;
  const max = Math.max(...groups.flatMap((group) => group.bars.map((bar) => bar.value)), 1e-9);
  const groupWidth = (width - 2 * left) / groups.length;
  const names = [...new Set(groups.flatMap((group) => group.bars.map((bar) => bar.name)))];
  const barWidth = (groupWidth * 0.7) / names.length;
  const parts: string[] = [];
  groups.forEach((group, g) => {
    const x0 = left + g * groupWidth + groupWidth * 0.15;
    group.bars.forEach((bar) => {
      const i = names.indexOf(bar.name);
      const barHeight = (bar.value / max) * plotHeight;
      const x = x0 + i * barWidth;
      const y = top + plotHeight - barHeight;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="${COLOURS[i % COLOURS.length]}"/>`);
      const shown = bar.value >= 100 ? Math.round(bar.value).toString() : bar.value.toFixed(3);
      parts.push(`<text x="${(x + barWidth / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" font-size="10" text-anchor="middle">${escape(shown + unit)}</text>`);
    });
    parts.push(`<text x="${(left + g * groupWidth + groupWidth / 2).toFixed(1)}" y="${height - bottom + 18}" font-size="12" text-anchor="middle">${escape(group.label)}</text>`);
  });
  const legend = names.map((name, i) => `<rect x="${left + i * 120}" y="${height - 18}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/><text x="${left + i * 120 + 14}" y="${height - 9}" font-size="11">${escape(name)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<text x="${width / 2}" y="22" font-size="14" text-anchor="middle">${escape(title)}</text>
<line x1="${left}" y1="${top + plotHeight}" x2="${width - left}" y2="${top + plotHeight}" stroke="#333"/>
${[...parts, ...legend].join('\n')}
</svg>
`;
}
