/**
 * PowerShell-style argument normalization before yargs sees argv: cmdlet names are case-insensitive
 * (`Get-VM` → `get-vm`) and single-dash PascalCase parameters become GNU long options
 * (`-Name` → `--name`, `-SizeBytes` → `--size-bytes`, `-VHDType` → `--vhd-type`). `-Switch:$false` is accepted.
 */
export function normalizeArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  argv.forEach((a, i) => {
    if (i === 0 && /^[A-Za-z]+-[A-Za-z]+$/.test(a)) {
      out.push(a.toLowerCase());
      return;
    }
    const m = /^-([A-Za-z][A-Za-z0-9]+)(:\$?(true|false))?$/.exec(a);
    if (m && m[1]!.length > 1) {
      const kebab = m[1]!
        .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
        .toLowerCase();
      out.push(m[3] === 'false' ? `--no-${kebab}` : `--${kebab}`);
      return;
    }
    out.push(a);
  });
  return out;
}
