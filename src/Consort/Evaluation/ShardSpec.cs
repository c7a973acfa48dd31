using System.Globalization;

namespace Consort.Evaluation;

/// <summary>
/// One of <see cref="Count"/> shards of a run (<c>--shard i/n</c>): item k of the selection (in its fixed order)
/// belongs to shard (k mod n) + 1, so n processes or machines split the items without talking to each other, and
/// <c>--merge-shards</c> puts the pieces back together into the summary of one unsharded run.
/// </summary>
/// <param name="Index">1-based shard number.</param>
/// <param name="Count">Number of shards.</param>
public sealed record ShardSpec(int Index, int Count)
{
    /// <summary>Parses "i/n" (1 ≤ i ≤ n).</summary>
    /// <exception cref="ConfigException">Malformed or out of range.</exception>
    public static ShardSpec Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && i >= 1 && i <= n)
            return new ShardSpec(i, n);
        throw new ConfigException($"--shard '{text}': expected i/n with 1 <= i <= n, e.g. 1/4");
    }

    /// <summary>The items of this shard, in selection order.</summary>
    public IReadOnlyList<T> Take<T>(IReadOnlyList<T> selection) => selection.Where((_, k) => k % Count == Index - 1).ToList();

    /// <inheritdoc />
    public override string ToString() => $"{Index}/{Count}";
}
