namespace Consort.Weights.Engine;

/// <summary>One block of a pass: elements [Start, Start + Length) of the tensor, the requested inputs decoded, and an output row.</summary>
public sealed class Block
{
    private readonly float[][] _inputs;
    private readonly float[] _output;
    private int _offset;

    internal Block(int inputs, int length)
    {
        _inputs = Enumerable.Range(0, inputs).Select(_ => new float[length]).ToArray();
        _output = new float[length];
    }

    /// <summary>First element of the block in the tensor.</summary>
    public long Start { get; private set; }
    /// <summary>Elements in the block (whole rows when the pass was asked to align to rows).</summary>
    public int Length { get; private set; }
    /// <summary>Index of the block in the pass (blocks are the same in memory and streamed).</summary>
    public int Index { get; private set; }
    /// <summary>Input <paramref name="i"/> (in the order the pass named its sources) over this block.</summary>
    public Span<float> In(int i) => _inputs[i].AsSpan(_offset, Length);
    /// <summary>The output of this block (map passes emit it).</summary>
    public Span<float> Out => _output.AsSpan(_offset, Length);

    internal float[] InputArray(int i) => _inputs[i];
    internal float[] OutputArray => _output;

    internal void Set(int index, long start, int offset, int length)
    {
        Index = index; Start = start; _offset = offset; Length = length;
    }
}

/// <summary>
/// Whole-tensor passes in blocks for methods that work element by element or row by row. Blocks hold whole rows when
/// asked (<c>align</c>), so row statistics can be computed inside one block. A tensor held in memory is processed by
/// all workers in parallel (inputs decoded block by block straight from the mapped files, output encoded in place); a
/// streamed one is read chunk by chunk and its blocks processed in order. The blocks are the same either way and
/// reductions are combined in block order, so both paths give the same bytes.
/// </summary>
public static class BlockPasses
{
    /// <summary>Target elements per block (inputs and output of a block stay in the L2 cache).</summary>
    public const int TargetBlock = 1 << 13;

    /// <summary>Block length for a tensor: whole rows of <paramref name="align"/> elements, about <see cref="TargetBlock"/>.</summary>
    public static int BlockLength(TensorJob job, long align)
    {
        align = Math.Max(1, align);
        if (align > int.MaxValue / 8) throw new ConsortException($"tensor '{job.Name}': rows of {align} elements are too long to merge row by row");
        long len = Math.Max(align, TargetBlock / align * align);
        return (int)Math.Min(len, Math.Max(1, job.Count));
    }

    /// <summary>
    /// A reducing pass: each block gets a fresh partial from <paramref name="partial"/>, <paramref name="body"/> fills
    /// it, and <paramref name="combine"/> receives the partials in block order (keep them small: in memory all of them
    /// are held until the blocks are done).
    /// </summary>
    public static void Scan<T>(TensorJob job, int[] sources, long align, Func<T> partial, Action<Block, T> body, Action<T> combine)
    {
        int len = BlockLength(job, align);
        int blocks = (int)((job.Count + len - 1) / len);
        if (job.InMemory)
        {
            var parts = new T[blocks];
            BlockLoop.Run(blocks, job.Parallelism, () => new Block(sources.Length, len), (b, block) =>
            {
                FillBlock(job, sources, block, b, len);
                var p = partial();
                body(block, p);
                parts[b] = p;
            });
            foreach (var s in sources.Distinct()) job.FinishReading(s);
            foreach (var p in parts) combine(p);
            return;
        }
        Stream(job, sources, len, block =>
        {
            var p = partial();
            body(block, p);
            combine(p);
        }, emit: false);
    }

    /// <summary>An output pass: <paramref name="body"/> fills each block's <see cref="Block.Out"/>, which is emitted.</summary>
    public static void Map(TensorJob job, int[] sources, long align, Action<Block> body) =>
        Map(job, sources, align, () => 0, (b, _) => body(b));

    /// <summary>An output pass with per-worker state (scratch rows), made once per worker.</summary>
    public static void Map<T>(TensorJob job, int[] sources, long align, Func<T> init, Action<Block, T> body)
    {
        int len = BlockLength(job, align);
        int blocks = (int)((job.Count + len - 1) / len);
        if (job.InMemory)
        {
            BlockLoop.Run(blocks, job.Parallelism, () => (new Block(sources.Length, len), init()), (b, w) =>
            {
                FillBlock(job, sources, w.Item1, b, len);
                body(w.Item1, w.Item2);
                job.EmitAt(w.Item1.Start, w.Item1.Out);
            });
            foreach (var s in sources.Distinct()) job.FinishReading(s);
            return;
        }
        var state = init();
        Stream(job, sources, len, block => body(block, state), emit: true);
    }

    private static void FillBlock(TensorJob job, int[] sources, Block block, int index, int len)
    {
        long start = (long)index * len;
        int n = (int)Math.Min(len, job.Count - start);
        block.Set(index, start, 0, n);
        for (int i = 0; i < sources.Length; i++) job.ReadBlock(sources[i], start, block.InputArray(i).AsSpan(0, n));
    }

    // Streamed: read chunks of whole blocks (large reads let the engine drop consumed pages), then visit the blocks.
    private static void Stream(TensorJob job, int[] sources, int len, Action<Block> visit, bool emit)
    {
        int perChunk = Math.Max(1, job.ChunkSize / len);
        int chunkLen = (int)Math.Min((long)perChunk * len, job.Count);
        var block = new Block(sources.Length, chunkLen);
        int index = 0;
        for (long start = 0; start < job.Count; start += chunkLen)
        {
            int n = (int)Math.Min(chunkLen, job.Count - start);
            for (int i = 0; i < sources.Length; i++) job.Read(sources[i], start, block.InputArray(i).AsSpan(0, n));
            for (int off = 0; off < n; off += len)
            {
                block.Set(index++, start + off, off, Math.Min(len, n - off));
                visit(block);
            }
            if (emit) job.Emit(block.OutputArray.AsSpan(0, n));
        }
    }
}
