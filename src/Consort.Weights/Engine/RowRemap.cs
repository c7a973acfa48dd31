using System.Buffers;

namespace Consort.Weights.Engine;

/// <summary>
/// An input's token-row tensor (embeddings, output head) as seen in the output vocabulary: each output row is the
/// input's own row, or a row made of other inputs' rows (one donor, or their mean), a zero row, or the mean of the
/// remapped rows (padding). Reads decode only the rows asked for.
/// </summary>
public sealed class RowRemap
{
    /// <summary>A row made of others: the mean of the listed (source, row) pairs; none is a zero row; <see cref="Pad"/> the mean of all real rows.</summary>
    /// <param name="Sources">Job source indices.</param>
    /// <param name="Rows">Rows in those sources.</param>
    /// <param name="Pad">A padding row.</param>
    public sealed record Composite(int[] Sources, int[] Rows, bool Pad = false);

    private readonly int[] _rows;
    private readonly Composite[] _composites;
    private readonly int _realRows;
    private float[]? _pad;
    private readonly object _gate = new();

    /// <summary>Row map: <paramref name="rows"/>[r] &gt;= 0 is the input's own row, -1-c is <paramref name="composites"/>[c].</summary>
    /// <param name="rows">Per output row, its code.</param>
    /// <param name="composites">Rows made of other rows.</param>
    /// <param name="realRows">Output rows before padding (the mean of these fills padding rows).</param>
    public RowRemap(int[] rows, Composite[] composites, int realRows)
    {
        _rows = rows; _composites = composites; _realRows = realRows;
    }

    /// <summary>Output rows.</summary>
    public int Rows => _rows.Length;

    /// <summary>
    /// Fills <paramref name="dst"/> with elements [start, start + dst.Length) of the remapped tensor (rows of
    /// <paramref name="width"/>); <paramref name="read"/>(source, element, span) decodes from one input's tensor.
    /// </summary>
    public void Read(long start, Span<float> dst, long width, Action<int, long, Span<float>> read, int self)
    {
        long end = start + dst.Length;
        float[]? row = null;
        try
        {
            for (long r = start / width; r * width < end; r++)
            {
                long r0 = r * width, from = Math.Max(start, r0), to = Math.Min(end, r0 + width);
                var target = dst.Slice((int)(from - start), (int)(to - from));
                int code = _rows[r];
                if (code >= 0) { read(self, code * width + (from - r0), target); continue; }
                var c = _composites[-1 - code];
                row ??= ArrayPool<float>.Shared.Rent((int)width);
                var whole = row.AsSpan(0, (int)width);
                if (c.Pad) PadRow(width, read, self).CopyTo(whole);
                else Mean(c, whole, width, read);
                whole.Slice((int)(from - r0), target.Length).CopyTo(target);
            }
        }
        finally
        {
            if (row is not null) ArrayPool<float>.Shared.Return(row);
        }
    }

    private static void Mean(Composite c, Span<float> whole, long width, Action<int, long, Span<float>> read)
    {
        whole.Clear();
        if (c.Sources.Length == 0) return;
        var tmp = ArrayPool<float>.Shared.Rent((int)width);
        try
        {
            for (int i = 0; i < c.Sources.Length; i++)
            {
                var t = tmp.AsSpan(0, (int)width);
                read(c.Sources[i], c.Rows[i] * width, t);
                System.Numerics.Tensors.TensorPrimitives.Add(whole, t, whole);
            }
        }
        finally { ArrayPool<float>.Shared.Return(tmp); }
        if (c.Sources.Length > 1) System.Numerics.Tensors.TensorPrimitives.Divide(whole, c.Sources.Length, whole);
    }

    // mergekit pads with the mean of the (remapped) real rows.
    private float[] PadRow(long width, Action<int, long, Span<float>> read, int self)
    {
        lock (_gate)
        {
            if (_pad is not null) return _pad;
            var sum = new double[width];
            var tmp = new float[width];
            for (int r = 0; r < _realRows; r++)
            {
                Read(r * width, tmp, width, read, self);
                for (int j = 0; j < width; j++) sum[j] += tmp[j];
            }
            return _pad = sum.Select(x => (float)(x / Math.Max(1, _realRows))).ToArray();
        }
    }
}
