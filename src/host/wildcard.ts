/**
 * PowerShell wildcard matching for `-Name` parameters: `*` any run, `?` one character, `[abc]` a set;
 * case-insensitive, whole-string (about_Wildcards).
 */

/** True when `pattern` contains a wildcard character. */
export function hasWildcard(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/** Compiles a PowerShell wildcard pattern to an anchored, case-insensitive RegExp. */
export function wildcardRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${pattern.slice(i + 1, end).replace(/[\\^]/g, '\\$&')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}
